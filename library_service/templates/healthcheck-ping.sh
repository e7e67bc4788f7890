#!/usr/bin/env bash
# Tell a health-check service (healthchecks.io style) about the backup: "start" from a
# pre hook, then "success" or "fail" from a post hook according to the backup's outcome,
# so a backup that never ends, fails or stops running raises an alert there.
#
# template_version: 1
# category: monitoring
# hook_type: any
# run_on: always
#
# Parameters:
#   PING_URL             The check's ping URL, e.g. https://hc-ping.com/<uuid>. Start
#                        pings go to PING_URL/start, failures to PING_URL/fail.
#   PING_MODE=auto       "auto": start in a pre hook; in a post hook success when the
#                        backup succeeded (or only warned), fail otherwise. Or force one
#                        of "start", "success", "fail".
#   PING_TIMEOUT=10      Seconds one attempt may take.
#   PING_RETRIES=3       Attempts after the first on a transient error (timeouts,
#                        refused connections, 408/429/5xx answers).
#   PING_STRICT=false    "true": a ping that cannot be delivered fails the hook. By
#                        default it only warns: monitoring trouble must not stop backups.
set -euo pipefail

: "${PING_URL:?PING_URL is required: the ping URL of the check}"
mode="${PING_MODE:-auto}"
ping_timeout="${PING_TIMEOUT:-10}"
ping_retries="${PING_RETRIES:-3}"
strict="${PING_STRICT:-false}"

# The executor says pre-backup / post-backup and success, warning, failure, cancelled,
# aborted, skipped; other spellings (PRE_BACKUP, BACKUP_OUTCOME_FAILURE...) are tolerated.
hook_type="${HOOKSHELF_HOOK_TYPE:-}"
hook_type="${hook_type,,}"
hook_type="${hook_type#hook_type_}"
backup_status="${HOOKSHELF_BACKUP_STATUS:-}"
backup_status="${backup_status,,}"
backup_status="${backup_status#backup_outcome_}"

if [[ "${mode}" == auto ]]; then
    if [[ "${hook_type}" == pre* || (-z "${hook_type}" && -z "${backup_status}") ]]; then
        mode=start
    else
        case "${backup_status}" in
            success | succeeded | warning) mode=success ;;
            *) mode=fail ;;
        esac
    fi
fi
case "${mode}" in
    start) suffix=/start ;;
    success) suffix= ;;
    fail) suffix=/fail ;;
    *)
        echo "healthcheck-ping: PING_MODE must be auto, start, success or fail, not '${mode}'" >&2
        exit 2
        ;;
esac

# The suffix goes before a query string the URL may carry (?create=1 and the like).
base="${PING_URL%%\?*}"
query=""
if [[ "${PING_URL}" == *\?* ]]; then
    query="?${PING_URL#*\?}"
fi
# healthchecks.io pairs a start with its end by run id (a UUID): concurrent backups
# reporting to the same check do not mix up their durations.
run_id="${HOOKSHELF_RUN_ID:-}"
if [[ "${run_id}" =~ ^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$ ]]; then
    if [[ -n "${query}" ]]; then
        query+="&rid=${run_id}"
    else
        query="?rid=${run_id}"
    fi
fi
url="${base%/}${suffix}${query}"

message="hookshelf ${hook_type:-hook}: backup ${backup_status:-starting}"
if [[ -n "${HOOKSHELF_REPOSITORY_ID:-}" ]]; then
    message+=" (repository ${HOOKSHELF_REPOSITORY_ID})"
fi

echo "healthcheck-ping: sending ${mode}"
if curl --fail --silent --show-error --output /dev/null \
    --max-time "${ping_timeout}" --retry "${ping_retries}" --retry-connrefused \
    --data-raw "${message}" -- "${url}"; then
    echo "healthcheck-ping: ${mode} delivered"
elif [[ "${strict}" == true ]]; then
    echo "healthcheck-ping: could not deliver the ${mode} ping" >&2
    exit 1
else
    echo "healthcheck-ping: warning: could not deliver the ${mode} ping; the backup goes on" >&2
fi
