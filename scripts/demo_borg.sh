#!/usr/bin/env bash
# `make demo`: a real Borg backup wrapped in Hookshelf hook chains, start to finish.
#
# Starts the library (SQLite) and the executor (unix socket) in ./demo-data, creates three
# hook scripts with the `hookshelf` CLI, attaches them to the repository "demo", runs one
# backup that succeeds and one that fails on purpose, shows the history and the archive,
# and stops both services with SIGTERM. Assumes `make setup` ran (.venv exists); installs
# borgbackup from Debian's packages when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

PY=.venv/bin/python
HOOKSHELF=.venv/bin/hookshelf
GRPCURL=.venv/bin/grpcurl
for tool in "$PY" "$HOOKSHELF" "$GRPCURL"; do
    [ -x "$tool" ] || die "$tool is missing: run 'make setup' first"
done
command -v borg >/dev/null 2>&1 || apt_install borgbackup

DATA=$PWD/demo-data
LIBRARY_PID="" EXECUTOR_PID=""

stop_service() { # name pid: SIGTERM, then wait for it to drain and exit
    local name=$1 pid=$2
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    local status=0
    wait "$pid" || status=$?
    say "$name stopped (exit status $status)"
}
cleanup() {
    stop_service executor "$EXECUTOR_PID"
    stop_service library "$LIBRARY_PID"
}
trap cleanup EXIT

step() { printf '\n\033[1;34m== %s\033[0m\n' "$1"; [ $# -lt 2 ] || printf '%s\n' "${@:2}"; }
show() {
    printf '\033[2m$ %s\033[0m\n' "$*"
    "$@"
}

wait_healthy() { # name pid log grpcurl-address-args...
    local name=$1 pid=$2 log=$3
    shift 3
    for _ in $(seq 1 150); do
        if "$GRPCURL" -plaintext -max-time 1 "$@" grpc.health.v1.Health/Check 2>/dev/null \
            | grep -q SERVING; then
            say "$name is serving"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; die "the $name exited"; }
        sleep 0.1
    done
    tail -n 20 "$log" >&2
    die "the $name did not become healthy"
}

step "Fresh data directory: $DATA"
rm -rf "$DATA"
mkdir -p "$DATA/source" "$DATA/app"
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export HOOKSHELF_DATA_DIR=$DATA
export HOOKSHELF_LIBRARY_LISTEN=127.0.0.1:$PORT
export HOOKSHELF_LIBRARY_TARGET=127.0.0.1:$PORT
export HOOKSHELF_EXECUTOR_LISTEN=unix:$DATA/executor.sock
export HOOKSHELF_EXECUTOR_TARGET=unix:$DATA/executor.sock
export HOOKSHELF_EXECUTOR_STATE_DIR=$DATA/executor
export HOOKSHELF_LOG_FORMAT=json
export HOOKSHELF_SHUTDOWN_GRACE_SECONDS=5
# Borg without prompts, with its cache and keys inside the demo directory.
export BORG_BASE_DIR=$DATA/borg-home
export BORG_REPO=$DATA/borg-repo
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

step "Start both services" \
    "The library keeps scripts, assignments and history (SQLite in demo-data/library.db);" \
    "the executor runs hook chains next to the backup, on a unix socket."
"$PY" -m library_service 2>"$DATA/library.log" &
LIBRARY_PID=$!
wait_healthy library "$LIBRARY_PID" "$DATA/library.log" "127.0.0.1:$PORT"
"$PY" -m executor_service 2>"$DATA/executor.log" &
EXECUTOR_PID=$!
wait_healthy executor "$EXECUTOR_PID" "$DATA/executor.log" -unix "$DATA/executor.sock"

step "An application database to protect" \
    "A small SQLite database outside the backed-up directory: a pre hook will dump it."
"$PY" - "$DATA/app/app.db" <<'PY'
import sqlite3, sys
with sqlite3.connect(sys.argv[1]) as db:
    db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer TEXT, total REAL)")
    db.executemany("INSERT INTO invoices (customer, total) VALUES (?, ?)",
                   [("ACME", 120.5), ("Globex", 99.0), ("Initech", 42.0)])
PY
echo "hello from the files being backed up" >"$DATA/source/notes.txt"
say "created demo-data/app/app.db (3 invoices) and demo-data/source/notes.txt"

step "Hook scripts, created with the CLI" \
    "\${NAME} in a script declares a parameter; each assignment gives its value."
cat >"$DATA/dump-app-db.sh" <<'SH'
#!/bin/sh
# Dump the application database into the directory the backup includes.
set -eu
mkdir -p "${DUMP_DIR}"
python3 - "${APP_DB}" "${DUMP_DIR}/app.sql" <<'PY'
import sqlite3, sys
with sqlite3.connect(sys.argv[1]) as db, open(sys.argv[2], "w") as out:
    out.writelines(line + "\n" for line in db.iterdump())
PY
echo "dumped $(grep -c INSERT "${DUMP_DIR}/app.sql") rows of ${APP_DB} to ${DUMP_DIR}/app.sql"
SH
cat >"$DATA/remove-dump.sh" <<'SH'
#!/bin/sh
# Whatever happened, do not leave the dump lying around.
rm -rf "${DUMP_DIR}"
echo "removed ${DUMP_DIR} (backup status: ${HOOKSHELF_BACKUP_STATUS})"
SH
cat >"$DATA/notify-success.sh" <<'SH'
#!/bin/sh
# A health-check ping would go here; the demo appends to a log instead.
echo "$(date +%T) backup ${HOOKSHELF_JOB_ID} of ${HOOKSHELF_REPOSITORY_ID} succeeded" >>"${NOTIFY_LOG}"
echo "success recorded in ${NOTIFY_LOG}"
SH
cat >"$DATA/alert-failure.sh" <<'SH'
#!/bin/sh
echo "$(date +%T) ALERT: backup ${HOOKSHELF_JOB_ID} of ${HOOKSHELF_REPOSITORY_ID} ended: ${HOOKSHELF_BACKUP_STATUS}" >>"${NOTIFY_LOG}"
echo "alert recorded in ${NOTIFY_LOG}" >&2
SH
show "$HOOKSHELF" scripts create dump-app-db --file "$DATA/dump-app-db.sh" \
    --category database --description "Dump a SQLite database (pre)"
show "$HOOKSHELF" scripts create remove-dump --file "$DATA/remove-dump.sh" --run-on always \
    --description "Remove the dump (post, always)"
show "$HOOKSHELF" scripts create notify-success --file "$DATA/notify-success.sh" \
    --run-on success --description "Report a good backup (post, success only)"
show "$HOOKSHELF" scripts create alert-failure --file "$DATA/alert-failure.sh" \
    --run-on failure --description "Raise the alarm (post, failure only)"
show "$HOOKSHELF" scripts list

step "Attach them to the repository 'demo'" \
    "The pre chain runs before the backup; the post chain after it, each step only when" \
    "its run_on matches the outcome (success / warning / failure / always)."
show "$HOOKSHELF" assign dump-app-db -r demo --hook pre \
    --param "APP_DB=$DATA/app/app.db" --param "DUMP_DIR=$DATA/source/db-dump"
show "$HOOKSHELF" assign remove-dump -r demo --hook post --order 10 \
    --param "DUMP_DIR=$DATA/source/db-dump"
show "$HOOKSHELF" assign notify-success -r demo --hook post --order 20 \
    --param "NOTIFY_LOG=$DATA/notifications.log"
show "$HOOKSHELF" assign alert-failure -r demo --hook post --order 30 \
    --param "NOTIFY_LOG=$DATA/notifications.log"
show "$HOOKSHELF" plan -r demo --hook post

step "A Borg repository"
show borg init --encryption=none "$BORG_REPO"

step "Backup 1: hookshelf backup -- borg create" \
    "Pre chain → verdict PROCEED → borg runs (lease renewed meanwhile) → exit 0 = success" \
    "→ post chain for outcome success: remove-dump and notify-success run, alert-failure not."
show "$HOOKSHELF" backup --repository demo --job nightly-1 -- \
    borg create --stats "$BORG_REPO::demo-{now}" "$DATA/source"

step "Backup 2 fails on purpose: borg is pointed at a repository that does not exist" \
    "borg exits 2 = failure; the post chain runs for outcome failure: remove-dump (always)" \
    "and alert-failure (failure) run, notify-success (success only) is skipped." \
    "hookshelf exits with borg's status, 2."
status=0
show "$HOOKSHELF" backup --repository demo --job nightly-2 -- \
    borg create "$DATA/no-such-repo::demo-{now}" "$DATA/source" || status=$?
say "hookshelf backup exited with status $status"
[ "$status" -eq 2 ] || die "expected exit status 2 from the failed backup"

step "What the post hooks reported"
show cat "$DATA/notifications.log"

step "The activity feed: every hook execution, newest first"
show "$HOOKSHELF" history --repository demo

step "The archive holds the database dump made by the pre hook"
show borg list "$BORG_REPO"
ARCHIVE=$(borg list --short --last 1 "$BORG_REPO")
show borg list "$BORG_REPO::$ARCHIVE"
borg extract --stdout "$BORG_REPO::$ARCHIVE" "${DATA#/}/source/db-dump/app.sql" | grep INSERT
[ ! -e "$DATA/source/db-dump" ] || die "the post hook should have removed the dump"
say "and the dump itself is gone from disk again (remove-dump ran after each backup)"

step "Stop both services (SIGTERM: they drain and exit)"
stop_service executor "$EXECUTOR_PID"
EXECUTOR_PID=""
stop_service library "$LIBRARY_PID"
LIBRARY_PID=""
step "Demo finished" "Data, logs and the Borg repository are in demo-data/ (wiped by the next run)."
