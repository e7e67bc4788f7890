#!/usr/bin/env bash
# Start Docker containers again after the backup, whatever its outcome. Pair it with
# docker-stop as a pre hook, giving both the same CONTAINERS.
#
# template_version: 1
# category: docker
# hook_type: post_backup
# run_on: always
#
# Parameters:
#   CONTAINERS              Containers to start: names or ids, space-separated.
#   START_ORDER=reverse     "reverse" starts them in the opposite order of CONTAINERS (the
#                           database before its application, when docker-stop got the
#                           same list); "given" starts them in the order written.
#   DOCKER=docker           The Docker command, e.g. "sudo docker" or "podman".
#
# Every container is tried even when one fails to start; the hook then fails, naming them.
set -euo pipefail

: "${CONTAINERS:?CONTAINERS is required: the containers to start, space-separated}"
read -r -a containers <<<"${CONTAINERS}"
read -r -a docker <<<"${DOCKER:-docker}"
start_order="${START_ORDER:-reverse}"

if ((${#containers[@]} == 0)); then
    echo "docker-start: CONTAINERS names no container" >&2
    exit 2
fi
case "${start_order}" in
    reverse)
        ordered=()
        for ((i = ${#containers[@]} - 1; i >= 0; i--)); do
            ordered+=("${containers[i]}")
        done
        ;;
    given) ordered=("${containers[@]}") ;;
    *)
        echo "docker-start: START_ORDER must be 'reverse' or 'given', not '${start_order}'" >&2
        exit 2
        ;;
esac

failed=()
for container in "${ordered[@]}"; do
    echo "docker-start: starting ${container}"
    if ! "${docker[@]}" start "${container}" >/dev/null; then
        failed+=("${container}")
    fi
done
if ((${#failed[@]} > 0)); then
    echo "docker-start: could not start: ${failed[*]}" >&2
    exit 1
fi
echo "docker-start: ${#ordered[@]} container(s) started"
