#!/usr/bin/env bash
# Dump MySQL or MariaDB databases to a file before the backup, so the backup holds a
# consistent copy instead of the server's live data files.
#
# template_version: 1
# category: database
# hook_type: pre_backup
# timeout_seconds: 3600
#
# Parameters:
#   MYSQL_HOST=127.0.0.1       Server host name or address.
#   MYSQL_PORT=3306            Server port.
#   MYSQL_USER=root            User to dump as.
#   MYSQL_PASSWORD= [secret]   Its password; handed over in MYSQL_PWD, never on the
#                              command line (where every user could read it).
#   MYSQL_DATABASES=all        Databases to dump, space-separated, or "all".
#   DUMP_FILE=/var/backups/hookshelf/mysql.sql
#                              Where the dump goes; replaced only once a dump succeeded.
#   MYSQL_DUMP_OPTIONS="--single-transaction --quick --routines --triggers"
#                              Options for the dump tool (InnoDB-consistent by default).
#   MYSQL_DUMP_COMMAND=        The dump command; empty: mariadb-dump, else mysqldump.
#                              E.g. "docker exec -i -e MYSQL_PWD db mariadb-dump".
#
# Restore with: mariadb < DUMP_FILE (the dump creates its databases).
set -euo pipefail

dump_file="${DUMP_FILE:-/var/backups/hookshelf/mysql.sql}"
read -r -a options <<<"${MYSQL_DUMP_OPTIONS:---single-transaction --quick --routines --triggers}"
read -r -a databases <<<"${MYSQL_DATABASES:-all}"

if [[ -n "${MYSQL_DUMP_COMMAND:-}" ]]; then
    read -r -a dump <<<"${MYSQL_DUMP_COMMAND}"
elif command -v mariadb-dump >/dev/null 2>&1; then
    dump=(mariadb-dump)
else
    dump=(mysqldump)
fi

if ((${#databases[@]} == 0)) || [[ "${databases[*]}" == "all" ]]; then
    selection=(--all-databases)
else
    selection=(--databases "${databases[@]}")
fi

# The password travels in the environment of the dump tool only.
if [[ -n "${MYSQL_PASSWORD:-}" ]]; then
    export MYSQL_PWD="${MYSQL_PASSWORD}"
fi

umask 077
mkdir -p -- "$(dirname -- "${dump_file}")"
partial="$(mktemp -- "${dump_file}.partial.XXXXXX")"
trap 'rm -f -- "${partial}"' EXIT

echo "mysql-dump: dumping ${databases[*]} from ${MYSQL_HOST:-127.0.0.1}:${MYSQL_PORT:-3306}"
"${dump[@]}" --host="${MYSQL_HOST:-127.0.0.1}" --port="${MYSQL_PORT:-3306}" \
    --user="${MYSQL_USER:-root}" "${options[@]}" "${selection[@]}" >"${partial}"
mv -f -- "${partial}" "${dump_file}"
echo "mysql-dump: wrote ${dump_file} ($(wc -c <"${dump_file}") bytes)"
