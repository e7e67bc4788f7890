#!/usr/bin/env bash
# Dump a PostgreSQL database to a file before the backup, so the backup holds a
# consistent copy instead of the server's live data files.
#
# template_version: 1
# category: database
# hook_type: pre_backup
# timeout_seconds: 3600
#
# Parameters:
#   POSTGRES_DATABASE             The database to dump (one per instance of this template).
#   POSTGRES_HOST=127.0.0.1       Server host, or the directory of its unix socket.
#   POSTGRES_PORT=5432            Server port.
#   POSTGRES_USER=postgres        User to dump as.
#   POSTGRES_PASSWORD= [secret]   Its password; handed over in PGPASSWORD, never on the
#                                 command line. Empty: ~/.pgpass or trust.
#   DUMP_FORMAT=custom            "custom" (compressed, restore with pg_restore) or
#                                 "plain" (SQL, restore with psql).
#   DUMP_FILE=/var/backups/hookshelf/postgres.dump
#                                 Where the dump goes; replaced only once a dump succeeded.
#   POSTGRES_CONNECT_TIMEOUT=10   Seconds to wait for the server to answer.
#   PG_DUMP_OPTIONS=              More pg_dump options, e.g. "--exclude-table=logs".
#   PG_DUMP_COMMAND=pg_dump       The dump command, e.g. "docker exec -i -e PGPASSWORD db
#                                 pg_dump" (the dump is read from its standard output).
set -euo pipefail

: "${POSTGRES_DATABASE:?POSTGRES_DATABASE is required: the database to dump}"
database="${POSTGRES_DATABASE}"
dump_file="${DUMP_FILE:-/var/backups/hookshelf/postgres.dump}"
read -r -a dump <<<"${PG_DUMP_COMMAND:-pg_dump}"
read -r -a extra <<<"${PG_DUMP_OPTIONS:-}"

dump_format="${DUMP_FORMAT:-custom}"
case "${dump_format}" in
    custom) format=(--format=custom) ;;
    plain) format=(--format=plain) ;;
    *)
        echo "postgres-dump: DUMP_FORMAT must be 'custom' or 'plain', not '${dump_format}'" >&2
        exit 2
        ;;
esac

# The password travels in the environment of the dump tool only.
if [[ -n "${POSTGRES_PASSWORD:-}" ]]; then
    export PGPASSWORD="${POSTGRES_PASSWORD}"
fi
export PGCONNECT_TIMEOUT="${POSTGRES_CONNECT_TIMEOUT:-10}"

umask 077
mkdir -p -- "$(dirname -- "${dump_file}")"
partial="$(mktemp -- "${dump_file}.partial.XXXXXX")"
trap 'rm -f -- "${partial}"' EXIT

echo "postgres-dump: dumping ${database} from ${POSTGRES_HOST:-127.0.0.1}:${POSTGRES_PORT:-5432}"
"${dump[@]}" --host="${POSTGRES_HOST:-127.0.0.1}" --port="${POSTGRES_PORT:-5432}" \
    --username="${POSTGRES_USER:-postgres}" --no-password "${format[@]}" \
    "${extra[@]}" --dbname="${database}" >"${partial}"
mv -f -- "${partial}" "${dump_file}"
echo "postgres-dump: wrote ${dump_file} ($(wc -c <"${dump_file}") bytes)"
