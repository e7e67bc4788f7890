#!/usr/bin/env bash
# Take Nextcloud out of maintenance mode after the backup, whatever its outcome. Pair it
# with nextcloud-maintenance-on as a pre hook.
#
# template_version: 1
# category: nextcloud
# hook_type: post_backup
# run_on: always
#
# Parameters:
#   NEXTCLOUD_CONTAINER=nextcloud   The container running Nextcloud (for docker exec).
#   NEXTCLOUD_USER=www-data         The user occ runs as inside the container.
#   OCC_COMMAND=                    The whole occ command instead of docker exec, e.g.
#                                   "sudo -u www-data php /var/www/nextcloud/occ".
#   DOCKER=docker                   The Docker command, e.g. "sudo docker".
set -euo pipefail

if [[ -n "${OCC_COMMAND:-}" ]]; then
    read -r -a occ <<<"${OCC_COMMAND}"
else
    read -r -a docker <<<"${DOCKER:-docker}"
    occ=("${docker[@]}" exec --user "${NEXTCLOUD_USER:-www-data}" "${NEXTCLOUD_CONTAINER:-nextcloud}" php occ)
fi

echo "nextcloud-maintenance-off: turning maintenance mode off"
"${occ[@]}" maintenance:mode --off
