#!/usr/bin/env bash
# Stop systemd units (services, timers) before the backup, so the files they write are
# at rest while the backup reads them. Pair it with systemd-unit-start as a post hook.
#
# template_version: 1
# category: system
# hook_type: pre_backup
#
# Parameters:
#   UNITS                   Units to stop, space-separated, e.g. "gitea.service".
#   SYSTEMCTL=systemctl     The systemctl command, e.g. "systemctl --user" or
#                           "sudo systemctl".
set -euo pipefail

: "${UNITS:?UNITS is required: the units to stop, space-separated}"
read -r -a units <<<"${UNITS}"
read -r -a systemctl <<<"${SYSTEMCTL:-systemctl}"

if ((${#units[@]} == 0)); then
    echo "systemd-unit-stop: UNITS names no unit" >&2
    exit 2
fi
echo "systemd-unit-stop: stopping ${units[*]}"
"${systemctl[@]}" stop -- "${units[@]}"
