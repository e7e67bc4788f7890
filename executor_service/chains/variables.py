"""The variables a hook sees beyond its parameters: the ``HOOKSHELF_*`` system variables
and the orchestrator's variables (validated), and their names for statuses and hook types.
"""

from __future__ import annotations

from collections.abc import Mapping

from executor_service.runner.environment import check_variable_name, check_variable_value
from shared.errors import InvalidArgument, Violations
from shared.stubs import library_pb2

HOOK_TYPE_NAMES: dict[int, str] = {
    library_pb2.HOOK_TYPE_PRE_BACKUP: "pre-backup",
    library_pb2.HOOK_TYPE_POST_BACKUP: "post-backup",
}
BACKUP_STATUS_NAMES: dict[int, str] = {
    library_pb2.BACKUP_OUTCOME_SUCCESS: "success",
    library_pb2.BACKUP_OUTCOME_WARNING: "warning",
    library_pb2.BACKUP_OUTCOME_FAILURE: "failure",
    library_pb2.BACKUP_OUTCOME_CANCELLED: "cancelled",
    library_pb2.BACKUP_OUTCOME_ABORTED: "aborted",
    library_pb2.BACKUP_OUTCOME_SKIPPED: "skipped",
}
MAX_VARIABLES = 256
MAX_VALUE_BYTES = 64 * 1024


def check_variables(field: str, variables: Mapping[str, str]) -> dict[str, str]:
    """The orchestrator's variables, every bad one reported (``variables[NAME]``)."""
    problems = Violations()
    if len(variables) > MAX_VARIABLES:
        problems.add(field, f"at most {MAX_VARIABLES} variables, got {len(variables)}")
    for name, value in variables.items():
        path = f"{field}[{name}]"
        try:
            check_variable_name(path, name)
            check_variable_value(path, value)
        except InvalidArgument as error:
            problems.items.extend(error.violations)
            continue
        if len(value.encode()) > MAX_VALUE_BYTES:
            problems.add(path, f"must be at most {MAX_VALUE_BYTES} bytes")
    problems.raise_if_any()
    return dict(variables)


def system_variables(
    *,
    run_id: str,
    job_id: str,
    repository_id: str,
    repository_path: str,
    hook_type: int,
    outcome: int,
    backup_date: str,
    script_name: str,
    execution_id: str,
) -> dict[str, str]:
    """What every hook is told about its run. HOOKSHELF_BACKUP_STATUS only for post hooks
    (a pre hook runs before there is a status)."""
    variables = {
        "HOOKSHELF_RUN_ID": run_id,
        "HOOKSHELF_JOB_ID": job_id,
        "HOOKSHELF_REPOSITORY_ID": repository_id,
        "HOOKSHELF_REPOSITORY_PATH": repository_path,
        "HOOKSHELF_HOOK_TYPE": HOOK_TYPE_NAMES.get(hook_type, ""),
        "HOOKSHELF_BACKUP_DATE": backup_date,
        "HOOKSHELF_SCRIPT_NAME": script_name,
        "HOOKSHELF_EXECUTION_ID": execution_id,
    }
    if hook_type == library_pb2.HOOK_TYPE_POST_BACKUP and outcome in BACKUP_STATUS_NAMES:
        variables["HOOKSHELF_BACKUP_STATUS"] = BACKUP_STATUS_NAMES[outcome]
    return variables
