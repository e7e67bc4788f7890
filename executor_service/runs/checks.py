"""The checks of what a client sends about runs (ids, leases, outcomes, free text), used by
every run kind: backups, inline hooks, windows, script tests. Each names the field as the
request spells it."""

from __future__ import annotations

from shared.errors import InvalidArgument, Violations
from shared.hook_policy import MAX_ID_LENGTH
from shared.stubs import library_pb2

MIN_LEASE_SECONDS = 60
MAX_LEASE_SECONDS = 86_400
DEFAULT_LEASE_SECONDS = 600
MAX_PATH_LENGTH = 4096
# What a client may report; ABORTED and SKIPPED are the executor's own outcomes.
END_OUTCOMES = (
    library_pb2.BACKUP_OUTCOME_SUCCESS,
    library_pb2.BACKUP_OUTCOME_WARNING,
    library_pb2.BACKUP_OUTCOME_FAILURE,
    library_pb2.BACKUP_OUTCOME_CANCELLED,
)


def check_lease(field_name: str, seconds: int) -> int:
    """60-86400, or 0 for the default."""
    if seconds == 0:
        return DEFAULT_LEASE_SECONDS
    if not MIN_LEASE_SECONDS <= seconds <= MAX_LEASE_SECONDS:
        raise InvalidArgument(
            field_name,
            f"must be between {MIN_LEASE_SECONDS} and {MAX_LEASE_SECONDS} seconds "
            f"(or 0 for {DEFAULT_LEASE_SECONDS}), got {seconds}",
        )
    return seconds


def check_text(
    problems: Violations, field_name: str, value: str, *, limit: int, required: bool = False
) -> None:
    if required and not value:
        problems.add(field_name, "is required")
    elif len(value) > limit:
        problems.add(field_name, f"must be at most {limit} characters")
    elif "\x00" in value:
        problems.add(field_name, "must not contain NUL characters")


def check_outcome(field_name: str, outcome: int) -> library_pb2.BackupOutcome.ValueType:
    """An outcome a client may report (SUCCESS, WARNING, FAILURE, CANCELLED)."""
    if outcome == library_pb2.BACKUP_OUTCOME_UNSPECIFIED:
        raise InvalidArgument(field_name, "is required: SUCCESS, WARNING, FAILURE or CANCELLED")
    if outcome not in END_OUTCOMES:
        raise InvalidArgument(
            field_name, f"must be SUCCESS, WARNING, FAILURE or CANCELLED, got {outcome}"
        )
    return library_pb2.BackupOutcome.ValueType(outcome)


def check_run_id(run_id: str) -> str:
    if not run_id:
        raise InvalidArgument("run_id", "is required")
    if len(run_id) > MAX_ID_LENGTH:
        raise InvalidArgument("run_id", f"must be at most {MAX_ID_LENGTH} characters")
    return run_id
