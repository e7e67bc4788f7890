#!/usr/bin/env bash
# `make demo` (first version): start the library service on SQLite in a throw-away data
# directory, talk to it with grpcurl the way a person would (reflection listing, create a
# script, get it, list it), then stop it with SIGTERM and check it drained cleanly.
# The full backup demo (executor + orchestrator) replaces this later.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

PY=.venv/bin/python
GRPCURL=.venv/bin/grpcurl
[ -x "$PY" ] && [ -x "$GRPCURL" ] || die "run 'make setup' first"

DEMO_DIR=$(mktemp -d -t hookshelf-demo.XXXXXX)
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
LOG=$DEMO_DIR/library.log
LIB_PID=""

cleanup() {
    if [ -n "$LIB_PID" ] && kill -0 "$LIB_PID" 2>/dev/null; then
        kill -TERM "$LIB_PID" 2>/dev/null || true
        wait "$LIB_PID" 2>/dev/null || true
    fi
    rm -rf "$DEMO_DIR"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() {
    printf '$ %s\n' "$*"
    "$@"
}
grpc() { show "$GRPCURL" -plaintext "$@"; }

step "Start the library service (SQLite in $DEMO_DIR, listening on $ADDR)"
HOOKSHELF_DATA_DIR=$DEMO_DIR/data \
    HOOKSHELF_LIBRARY_LISTEN=$ADDR \
    HOOKSHELF_LOG_FORMAT=json \
    HOOKSHELF_SHUTDOWN_GRACE_SECONDS=5 \
    "$PY" -m library_service 2>"$LOG" &
LIB_PID=$!

for _ in $(seq 1 100); do
    if "$GRPCURL" -plaintext -max-time 1 "$ADDR" grpc.health.v1.Health/Check 2>/dev/null \
        | grep -q SERVING; then
        break
    fi
    kill -0 "$LIB_PID" 2>/dev/null || { cat "$LOG" >&2; die "the library service exited"; }
    sleep 0.2
done
grpc "$ADDR" grpc.health.v1.Health/Check

step "What the server offers (server reflection)"
grpc "$ADDR" list
grpc "$ADDR" list hookshelf.library.v1.ScriptLibraryService

step "Create a pre-backup script"
grpc -d @ "$ADDR" hookshelf.library.v1.ScriptLibraryService/CreateScript <<'EOF'
{
  "script": {
    "name": "stop-nextcloud",
    "description": "Stop the Nextcloud containers before the backup",
    "category": "docker",
    "content": "#!/bin/sh\nset -eu\ndocker stop ${CONTAINERS:-nextcloud nextcloud-db}\n"
  },
  "request_id": "demo-create-1",
  "author": "demo"
}
EOF

step "Get it back by name: content, digest, parameters"
grpc -d '{"name": "stop-nextcloud"}' "$ADDR" hookshelf.library.v1.ScriptLibraryService/GetScript

step "The file mirror on disk: the same content, mode 0755"
show ls -l "$DEMO_DIR/data/scripts/library/stop-nextcloud.sh"
show cat "$DEMO_DIR/data/scripts/library/stop-nextcloud.sh"

step "Search the library (built-in templates included), names only"
printf '$ %s\n' "$GRPCURL -plaintext -d '{\"query\": \"nextcloud\", \"page_size\": 10}' $ADDR hookshelf.library.v1.ScriptLibraryService/ListScripts"
"$GRPCURL" -plaintext -d '{"query": "nextcloud", "page_size": 10}' "$ADDR" \
    hookshelf.library.v1.ScriptLibraryService/ListScripts \
    | "$PY" -c 'import json, sys; [print(" ", s["name"], "-", s.get("description", "")[:70]) for s in json.load(sys.stdin).get("scripts", [])]'

step "Stop with SIGTERM: drain, then exit 0"
show kill -TERM "$LIB_PID"
status=0
wait "$LIB_PID" || status=$?
LIB_PID=""
printf 'library service exited with status %s; its last log lines:\n' "$status"
tail -n 3 "$LOG"
[ "$status" -eq 0 ] || die "the library service did not stop cleanly"
step "Demo finished"
