#!/usr/bin/env bash
# Wait until a TCP port accepts connections: after docker-start, before the next hook
# talks to the service; or before a dump, until the database is up.
#
# template_version: 1
# category: system
# hook_type: any
# run_on: always
#
# Parameters:
#   WAIT_PORT              The port to wait for.
#   WAIT_HOST=127.0.0.1    The host to connect to.
#   WAIT_TIMEOUT=60        Seconds to wait in all before the hook fails.
#   WAIT_INTERVAL=1        Seconds between attempts.
set -euo pipefail

: "${WAIT_PORT:?WAIT_PORT is required: the port to wait for}"
port="${WAIT_PORT}"
host="${WAIT_HOST:-127.0.0.1}"
wait_timeout="${WAIT_TIMEOUT:-60}"
interval="${WAIT_INTERVAL:-1}"

for number in "${port}" "${wait_timeout}"; do
    if [[ ! "${number}" =~ ^[0-9]+$ ]]; then
        echo "wait-for-tcp-port: '${number}' is not a whole number" >&2
        exit 2
    fi
done

echo "wait-for-tcp-port: waiting up to ${wait_timeout}s for ${host}:${port}"
deadline=$((SECONDS + wait_timeout))
while true; do
    # bash's /dev/tcp connects; timeout bounds a connect that hangs (a dropped SYN).
    # shellcheck disable=SC2016 # $1 and $2 expand in the inner bash, on purpose
    if timeout 5 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "${host}" "${port}" 2>/dev/null; then
        echo "wait-for-tcp-port: ${host}:${port} is accepting connections"
        exit 0
    fi
    if ((SECONDS >= deadline)); then
        echo "wait-for-tcp-port: ${host}:${port} still refuses after ${wait_timeout}s" >&2
        exit 1
    fi
    sleep "${interval}"
done
