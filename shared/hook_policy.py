"""Hook semantics both services apply, defined once (docs/design.md §1 "Plans", §2 "Which
post hooks run", "Failure policy").

The library resolves a plan with these defaults and limits; the executor runs it with the
same ones (which post hooks match an outcome, the timeout of a step that names none, how
large an inline script may be). Everything here is pure: no gRPC, no database, so either
service, the CLI and the tests import it without loading the other service.
"""

from __future__ import annotations

from google.protobuf.descriptor import EnumDescriptor

from shared.errors import InvalidArgument
from shared.stubs import library_pb2

# --- defaults and limits -----------------------------------------------------------------

# A step's timeout when neither its assignment nor its script names one.
DEFAULT_TIMEOUT_SECONDS = 300
# The longest a step may run (24 h): a backup window, not forever.
MAX_TIMEOUT_SECONDS = 86_400
# A post hook's run_on when neither its assignment nor its script names one.
DEFAULT_RUN_ON = library_pb2.RUN_ON_SUCCESS
# on_error when the assignment names none: a failed pre hook stops the backup; a failed
# post hook does not stop the hooks after it (they restart what the pre hooks stopped).
DEFAULT_ON_ERROR: dict[int, library_pb2.OnError.ValueType] = {
    library_pb2.HOOK_TYPE_PRE_BACKUP: library_pb2.ON_ERROR_ABORT,
    library_pb2.HOOK_TYPE_POST_BACKUP: library_pb2.ON_ERROR_CONTINUE,
}
# A hook exiting with this asks to skip the backup gracefully (as in borgmatic).
EXIT_SKIP_REQUESTED = 75
# One script's content: a stored version, an inline hook, a tested snippet.
MAX_CONTENT_BYTES = 1024 * 1024
# Content one plan may carry inline (ResolveHookPlanRequest.inline_content_max_bytes),
# well inside gRPC's default 4 MiB message.
MAX_INLINE_CONTENT_BYTES = 3 * 1024 * 1024
# Ids a client chooses (repository, job, run, window, holder).
MAX_ID_LENGTH = 255

# The outcome each specific run_on stands for. CANCELLED and ABORTED backups did not
# complete: for a post hook they are failures. SKIPPED is nobody's outcome but ALWAYS's.
_MATCHED_AS: dict[int, library_pb2.RunOn.ValueType | None] = {
    library_pb2.BACKUP_OUTCOME_SUCCESS: library_pb2.RUN_ON_SUCCESS,
    library_pb2.BACKUP_OUTCOME_WARNING: library_pb2.RUN_ON_WARNING,
    library_pb2.BACKUP_OUTCOME_FAILURE: library_pb2.RUN_ON_FAILURE,
    library_pb2.BACKUP_OUTCOME_CANCELLED: library_pb2.RUN_ON_FAILURE,
    library_pb2.BACKUP_OUTCOME_ABORTED: library_pb2.RUN_ON_FAILURE,
    library_pb2.BACKUP_OUTCOME_SKIPPED: None,
}


# --- rules -------------------------------------------------------------------------------


def run_on_matches(run_on: int, outcome: int) -> bool:
    """Does a post hook with this (effective) run_on run after a backup with this outcome?

    SUCCESS, WARNING and FAILURE match that outcome; CANCELLED and ABORTED count as
    FAILURE; SKIPPED matches ALWAYS only; ALWAYS matches every outcome. RUN_ON_UNSPECIFIED
    is the default, SUCCESS. An unknown run_on or outcome (UNSPECIFIED included: it is no
    outcome) is a programming error: ValueError.
    """
    if outcome not in _MATCHED_AS:
        raise ValueError(f"not a backup outcome: {outcome}")
    if run_on == library_pb2.RUN_ON_UNSPECIFIED:
        run_on = DEFAULT_RUN_ON
    if run_on == library_pb2.RUN_ON_ALWAYS:
        return True
    if run_on not in library_pb2.RunOn.DESCRIPTOR.values_by_number:
        raise ValueError(f"not a run_on value: {run_on}")
    return _MATCHED_AS[outcome] == run_on


# --- checks (each raises InvalidArgument naming the field as the request spells it) -----


def check_enum(
    field: str, value: int, enum: EnumDescriptor, *, allow_unspecified: bool = False
) -> int:
    """A known value of the enum; UNSPECIFIED (0) only where the field is optional."""
    if value == 0 and allow_unspecified:
        return value
    if value == 0:
        raise InvalidArgument(field, f"is required (one of {_names(enum)})")
    if value not in enum.values_by_number:
        raise InvalidArgument(field, f"unknown value {value} (one of {_names(enum)})")
    return value


def check_timeout(field: str, seconds: int) -> int:
    """1 to MAX_TIMEOUT_SECONDS."""
    if seconds <= 0:
        raise InvalidArgument(field, "must be a positive number of seconds")
    if seconds > MAX_TIMEOUT_SECONDS:
        raise InvalidArgument(field, f"must be at most {MAX_TIMEOUT_SECONDS} seconds (24 h)")
    return seconds


def _names(enum: EnumDescriptor) -> str:
    return ", ".join(v.name for v in enum.values if v.number != 0)
