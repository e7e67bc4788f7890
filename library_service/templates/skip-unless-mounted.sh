#!/usr/bin/env bash
# Skip the backup gracefully (exit 75, as in borgmatic) when a file system is not
# mounted: the USB disk is unplugged, the NAS share is down. Without it the backup would
# write into the empty mount point directory, or fail noisily every night.
#
# template_version: 1
# category: system
# hook_type: pre_backup
#
# Parameters:
#   MOUNT_POINT     The directory that must be a mount point, e.g. /mnt/backup-disk.
set -euo pipefail

: "${MOUNT_POINT:?MOUNT_POINT is required: the directory that must be mounted}"
mount_point="${MOUNT_POINT}"

is_mounted() {
    if command -v mountpoint >/dev/null 2>&1; then
        mountpoint -q -- "$1"
        return
    fi
    # Without util-linux: a mount point sits on another device than its parent, or is
    # its own parent (/).
    [[ -d "$1" ]] || return 1
    [[ "$(stat -c '%d' -- "$1")" != "$(stat -c '%d' -- "$1/..")" ||
        "$(stat -c '%d:%i' -- "$1")" == "$(stat -c '%d:%i' -- "$1/..")" ]]
}

if is_mounted "${mount_point}"; then
    echo "skip-unless-mounted: ${mount_point} is mounted"
    exit 0
fi
echo "skip-unless-mounted: ${mount_point} is not mounted; skipping this backup" >&2
exit 75
