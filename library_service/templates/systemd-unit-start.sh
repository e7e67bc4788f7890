#!/usr/bin/env bash
# Start systemd units again after the backup, whatever its outcome. Pair it with
# systemd-unit-stop as a pre hook, giving both the same UNITS.
#
# template_version: 1
# category: system
# hook_type: post_backup
# run_on: always
#
# Parameters:
#   UNITS                   Units to start, space-separated, e.g. "gitea.service".
#   SYSTEMCTL=systemctl     The systemctl command, e.g. "systemctl --user" or
#                           "sudo systemctl".
set -euo pipefail

: "${UNITS:?UNITS is required: the units to start, space-separated}"
read -r -a units <<<"${UNITS}"
read -r -a systemctl <<<"${SYSTEMCTL:-systemctl}"

if ((${#units[@]} == 0)); then
    echo "systemd-unit-start: UNITS names no unit" >&2
    exit 2
fi
echo "systemd-unit-start: starting ${units[*]}"
"${systemctl[@]}" start -- "${units[@]}"
