#!/usr/bin/env bash
# Stop Docker containers before the backup, so the files they write are at rest while
# the backup reads them. Pair it with docker-start as a post hook.
#
# template_version: 1
# category: docker
# hook_type: pre_backup
#
# Parameters:
#   CONTAINERS         Containers to stop: names or ids, space-separated, stopped in this
#                      order (the application before its database).
#   STOP_TIMEOUT=30    Seconds each container gets to stop before Docker kills it.
#   DOCKER=docker      The Docker command, e.g. "sudo docker" or "podman".
#
# Stopping a container that is already stopped succeeds. A container that does not exist
# fails the hook, which aborts the backup by default: better than backing up live data.
set -euo pipefail

: "${CONTAINERS:?CONTAINERS is required: the containers to stop, space-separated}"
read -r -a containers <<<"${CONTAINERS}"
read -r -a docker <<<"${DOCKER:-docker}"
stop_timeout="${STOP_TIMEOUT:-30}"

if [[ ! "${stop_timeout}" =~ ^[0-9]+$ ]]; then
    echo "docker-stop: STOP_TIMEOUT must be a whole number of seconds, not '${stop_timeout}'" >&2
    exit 2
fi
if ((${#containers[@]} == 0)); then
    echo "docker-stop: CONTAINERS names no container" >&2
    exit 2
fi

for container in "${containers[@]}"; do
    echo "docker-stop: stopping ${container}"
    "${docker[@]}" stop -t "${stop_timeout}" "${container}" >/dev/null
done
echo "docker-stop: ${#containers[@]} container(s) stopped"
