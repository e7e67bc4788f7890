"""What the journal holds, as Python values: runs and step attempts, and their columns.

`RunRecord` is a row of ``runs``, `StepRow` a row of ``steps``; the functions here turn
them into column values and back (JSON for variables and outputs, serialized protobuf for
post plans, summaries and execution records).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from executor_service.journal.sealing import Sealer
from shared.stubs import executor_pb2, library_pb2

RUN_STATE = executor_pb2.RunState
OPEN_STATES = (
    executor_pb2.RUN_STATE_PRE_RUNNING,
    executor_pb2.RUN_STATE_AWAITING_END,
    executor_pb2.RUN_STATE_POST_RUNNING,
)

# What a run is (``runs.kind``).
KIND_BACKUP = "backup"
KIND_INLINE = "inline"
KIND_WINDOW = "window"


@dataclass
class RunRecord:
    """A run as the journal holds it (enum columns typed as their proto enums: SQLite
    stores the numbers)."""

    run_id: str
    repository_id: str
    kind: str = KIND_BACKUP
    job_id: str = ""
    repository_path: str = ""
    trigger: library_pb2.ExecutionTrigger.ValueType = library_pb2.EXECUTION_TRIGGER_BACKUP
    state: executor_pb2.RunState.ValueType = executor_pb2.RUN_STATE_PRE_RUNNING
    verdict: executor_pb2.Verdict.ValueType = executor_pb2.VERDICT_UNSPECIFIED
    outcome: library_pb2.BackupOutcome.ValueType = library_pb2.BACKUP_OUTCOME_UNSPECIFIED
    lease_seconds: int = 600
    lease_expires_at: float = 0.0
    pre_started: bool = False
    post_chain_done: bool = False
    variables: dict[str, str] = field(default_factory=dict)
    post_plan: list[library_pb2.PlanStep] = field(default_factory=list)
    pre_summary: executor_pb2.SummaryEvent | None = None
    post_summary: executor_pb2.SummaryEvent | None = None
    created_at: float = 0.0
    ended_at: float | None = None
    # Backup runs: where the plans came from (LIBRARY, or CACHED when the library was
    # unreachable and the kept plans ran) and when the library resolved them.
    plan_source: library_pb2.PlanSource.ValueType = library_pb2.PLAN_SOURCE_UNSPECIFIED
    plan_resolved_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self.state != executor_pb2.RUN_STATE_ENDED


@dataclass
class StepRow:
    """One attempt at one step."""

    execution_id: str
    run_id: str
    hook_type: library_pb2.HookType.ValueType
    step_index: int
    script_name: str
    started_at: float
    record: library_pb2.Execution
    status: library_pb2.ExecutionStatus.ValueType = library_pb2.EXECUTION_STATUS_UNSPECIFIED
    exit_code: int = 0
    duration_ms: int = 0
    ended_at: float | None = None
    done: bool = False
    outputs: dict[str, str] = field(default_factory=dict)


def encode_plan(steps: Sequence[library_pb2.PlanStep]) -> bytes:
    return library_pb2.ResolveHookPlanResponse(steps=steps).SerializeToString()


def decode_plan(blob: bytes) -> list[library_pb2.PlanStep]:
    return list(library_pb2.ResolveHookPlanResponse.FromString(blob or b"").steps)


def decode_summary(blob: bytes | None) -> executor_pb2.SummaryEvent | None:
    return None if blob is None else executor_pb2.SummaryEvent.FromString(blob)


def encode_run_value(column: str, value: Any) -> Any:
    """A value for one column of ``runs`` (see `Runs.update_run`)."""
    if column == "variables":
        return json.dumps(value, sort_keys=True)
    if column in ("pre_summary", "post_summary"):
        return None if value is None else value.SerializeToString()
    if isinstance(value, bool):
        return int(value)
    return value


def run_values(run: RunRecord, sealer: Sealer) -> tuple[Any, ...]:
    """The columns a new run is inserted with (`Runs.create_run`), its post plan's secret
    values sealed (sealing.py)."""
    return (
        run.run_id,
        run.kind,
        run.repository_id,
        run.job_id,
        run.repository_path,
        run.trigger,
        run.state,
        run.verdict,
        run.outcome,
        run.lease_seconds,
        run.lease_expires_at,
        int(run.pre_started),
        int(run.post_chain_done),
        json.dumps(run.variables, sort_keys=True),
        encode_plan(sealer.seal_plan(run.post_plan)),
        run.created_at,
        run.plan_source,
        run.plan_resolved_at,
    )


def run_of(row: sqlite3.Row, sealer: Sealer) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        kind=row["kind"],
        repository_id=row["repository_id"],
        job_id=row["job_id"],
        repository_path=row["repository_path"],
        trigger=row["trigger"],
        state=row["state"],
        verdict=row["verdict"],
        outcome=row["outcome"],
        lease_seconds=row["lease_seconds"],
        lease_expires_at=row["lease_expires_at"],
        pre_started=bool(row["pre_started"]),
        post_chain_done=bool(row["post_chain_done"]),
        variables=json.loads(row["variables"]),
        post_plan=sealer.unseal_plan(decode_plan(row["post_plan"])),
        pre_summary=decode_summary(row["pre_summary"]),
        post_summary=decode_summary(row["post_summary"]),
        created_at=row["created_at"],
        ended_at=row["ended_at"],
        plan_source=row["plan_source"],
        plan_resolved_at=row["plan_resolved_at"],
    )


def started_values(step: StepRow) -> tuple[Any, ...]:
    """The columns an attempt is noted with when it starts (`Steps.step_started`)."""
    return (
        step.execution_id,
        step.run_id,
        step.hook_type,
        step.step_index,
        step.script_name,
        step.started_at,
        step.record.SerializeToString(),
    )


def step_of(row: sqlite3.Row) -> StepRow:
    return StepRow(
        execution_id=row["execution_id"],
        run_id=row["run_id"],
        hook_type=row["hook_type"],
        step_index=row["step_index"],
        script_name=row["script_name"],
        started_at=row["started_at"],
        record=library_pb2.Execution.FromString(row["record"]),
        status=row["status"],
        exit_code=row["exit_code"],
        duration_ms=row["duration_ms"],
        ended_at=row["ended_at"],
        done=bool(row["done"]),
        outputs=json.loads(row["outputs"]),
    )
