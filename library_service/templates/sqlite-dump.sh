#!/usr/bin/env bash
# Copy a live SQLite database consistently before the backup (copying the file itself
# while an application writes can give a torn copy).
#
# template_version: 1
# category: database
# hook_type: pre_backup
# timeout_seconds: 3600
#
# Parameters:
#   SQLITE_DATABASE                  The database file to copy.
#   DUMP_FILE=/var/backups/hookshelf/sqlite.db
#                                    Where the copy goes; replaced only once it succeeded.
#   DUMP_MODE=backup                 "backup": a database file (SQLite's online backup);
#                                    "sql": an SQL text dump (.dump).
#   SQLITE3=sqlite3                  The sqlite3 shell; when it is not installed, python3's
#                                    sqlite3 module does the same work.
set -euo pipefail

: "${SQLITE_DATABASE:?SQLITE_DATABASE is required: the database file to copy}"
database="${SQLITE_DATABASE}"
dump_file="${DUMP_FILE:-/var/backups/hookshelf/sqlite.db}"
mode="${DUMP_MODE:-backup}"

case "${mode}" in
    backup | sql) ;;
    *)
        echo "sqlite-dump: DUMP_MODE must be 'backup' or 'sql', not '${mode}'" >&2
        exit 2
        ;;
esac
# Opening a missing file would create an empty database and "back it up".
if [[ ! -f "${database}" || ! -r "${database}" ]]; then
    echo "sqlite-dump: ${database} is not a readable file" >&2
    exit 1
fi

umask 077
mkdir -p -- "$(dirname -- "${dump_file}")"
partial="$(mktemp -- "${dump_file}.partial.XXXXXX")"
trap 'rm -f -- "${partial}"' EXIT

echo "sqlite-dump: copying ${database} (${mode})"
if command -v "${SQLITE3:-sqlite3}" >/dev/null 2>&1; then
    sqlite3_command="${SQLITE3:-sqlite3}"
    if [[ "${mode}" == sql ]]; then
        "${sqlite3_command}" -bail -cmd ".timeout 30000" "${database}" .dump >"${partial}"
    else
        # .backup takes a file name inside its own quoting rules; a name mktemp made in
        # the current directory needs none, whatever the directory is called.
        database_path="$(realpath -- "${database}")"
        (cd -- "$(dirname -- "${partial}")" &&
            "${sqlite3_command}" -bail -cmd ".timeout 30000" "${database_path}" \
                ".backup $(basename -- "${partial}")")
    fi
else
    python3 - "${database}" "${partial}" "${mode}" <<'PYTHON'
import sqlite3
import sys

source_path, target_path, mode = sys.argv[1:4]
source = sqlite3.connect(source_path, timeout=30)
if mode == "sql":
    with open(target_path, "w", encoding="utf-8") as target:
        for line in source.iterdump():
            target.write(f"{line}\n")
else:
    target = sqlite3.connect(target_path)
    source.backup(target)
    target.close()
source.close()
PYTHON
fi
mv -f -- "${partial}" "${dump_file}"
echo "sqlite-dump: wrote ${dump_file} ($(wc -c <"${dump_file}") bytes)"
