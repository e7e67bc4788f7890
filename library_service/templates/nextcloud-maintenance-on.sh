#!/usr/bin/env bash
# Put Nextcloud into maintenance mode before the backup, so its files and its database
# are backed up in step. Pair it with nextcloud-maintenance-off as a post hook.
#
# template_version: 1
# category: nextcloud
# hook_type: pre_backup
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

echo "nextcloud-maintenance-on: turning maintenance mode on"
"${occ[@]}" maintenance:mode --on
