"""Command-line spellings of the proto enums, and KEY=VALUE / time parsing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import Enum

import typer

from shared.stubs import executor_pb2, library_pb2


class Hook(str, Enum):
    pre = "pre"
    post = "post"

    @property
    def proto(self) -> int:
        return {
            Hook.pre: library_pb2.HOOK_TYPE_PRE_BACKUP,
            Hook.post: library_pb2.HOOK_TYPE_POST_BACKUP,
        }[self]


class RunOn(str, Enum):
    success = "success"
    warning = "warning"
    failure = "failure"
    always = "always"

    @property
    def proto(self) -> int:
        return library_pb2.RunOn.Value(f"RUN_ON_{self.name.upper()}")


class OnError(str, Enum):
    abort = "abort"
    continue_ = "continue"
    skip_backup = "skip-backup"

    @property
    def proto(self) -> int:
        return library_pb2.OnError.Value("ON_ERROR_" + self.value.upper().replace("-", "_"))


class Outcome(str, Enum):
    success = "success"
    warning = "warning"
    failure = "failure"
    cancelled = "cancelled"
    aborted = "aborted"
    skipped = "skipped"

    @property
    def proto(self) -> int:
        return library_pb2.BackupOutcome.Value(f"BACKUP_OUTCOME_{self.name.upper()}")


class Status(str, Enum):
    succeeded = "succeeded"
    failed = "failed"
    timed_out = "timed-out"
    cancelled = "cancelled"
    skip_requested = "skip-requested"

    @property
    def proto(self) -> int:
        return library_pb2.ExecutionStatus.Value(
            "EXECUTION_STATUS_" + self.value.upper().replace("-", "_")
        )


_PREFIXES = {
    library_pb2.HookType: "HOOK_TYPE_",
    library_pb2.RunOn: "RUN_ON_",
    library_pb2.OnError: "ON_ERROR_",
    library_pb2.BackupOutcome: "BACKUP_OUTCOME_",
    library_pb2.ExecutionStatus: "EXECUTION_STATUS_",
    library_pb2.ExecutionTrigger: "EXECUTION_TRIGGER_",
    library_pb2.ParameterType: "PARAMETER_TYPE_",
    executor_pb2.Verdict: "VERDICT_",
    executor_pb2.RunState: "RUN_STATE_",
    executor_pb2.SkipReason: "SKIP_REASON_",
}


def label(enum: object, value: int) -> str:
    """RUN_ON_SUCCESS → 'success', HOOK_TYPE_PRE_BACKUP → 'pre', 0 → ''."""
    if not value:
        return ""
    try:
        name = enum.Name(value)  # type: ignore[attr-defined]  # any generated enum wrapper, typed object here
    except ValueError:
        return str(value)
    short = name.removeprefix(_PREFIXES.get(enum, "")).lower()  # type: ignore[call-overload]  # _PREFIXES is keyed by the enum wrappers; enum is typed object
    return {"pre_backup": "pre", "post_backup": "post"}.get(short, short).replace("_", "-")


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def key_values(pairs: list[str] | None, option: str) -> dict[str, str]:
    """['A=1', 'B=x=y'] → {'A': '1', 'B': 'x=y'}; a bad pair is a usage error."""
    found: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not _NAME.match(key):
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        found[key] = value
    return found


_AGO = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def point_in_time(text: str, option: str) -> datetime:
    """'90m', '2d' (that long ago) or an ISO 8601 date/time (local time when no zone)."""
    match = _AGO.match(text.strip())
    if match:
        return datetime.now(UTC) - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"expected e.g. 30m, 12h, 7d or 2024-05-01T12:00, got {text!r}", param_hint=option
        ) from None
    return moment if moment.tzinfo else moment.astimezone()
