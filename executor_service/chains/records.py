"""Execution records for the library's history, made from steps.

A record is made when a step starts (kept in the journal, so an attempt the executor
lost to a crash can still be recorded) and completed from its result.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from shared.stubs import library_pb2


def timestamp(moment: datetime | float) -> Timestamp:
    """A Timestamp from an aware datetime or epoch seconds."""
    stamp = Timestamp()
    if isinstance(moment, datetime):
        stamp.FromDatetime(moment.astimezone(UTC))
    else:
        stamp.FromNanoseconds(int(moment * 1e9))
    return stamp


def started_record(
    *,
    execution_id: str,
    script_id: str,
    script_name: str,
    digest: str,
    repository_id: str,
    job_id: str,
    run_id: str,
    hook_type: library_pb2.HookType.ValueType,
    trigger: library_pb2.ExecutionTrigger.ValueType,
    backup_outcome: library_pb2.BackupOutcome.ValueType,
    executor_id: str,
    started_at: float,
    plan_source: library_pb2.PlanSource.ValueType = library_pb2.PLAN_SOURCE_UNSPECIFIED,
    plan_resolved_at: float | None = None,
) -> library_pb2.Execution:
    """What is known of an execution when it starts."""
    record = library_pb2.Execution(
        execution_id=execution_id,
        script_id=script_id,
        script_name=script_name,
        digest=digest,
        repository_id=repository_id,
        job_id=job_id,
        run_id=run_id,
        hook_type=hook_type,
        trigger=trigger,
        backup_outcome=backup_outcome,
        executor_id=executor_id,
        start_time=timestamp(started_at),
        plan_source=plan_source,
    )
    if plan_resolved_at is not None:
        record.plan_resolve_time.CopyFrom(timestamp(plan_resolved_at))
    return record


def captured(output: object) -> library_pb2.CapturedOutput:
    """The runner's CapturedOutput as the library's message."""
    return library_pb2.CapturedOutput(
        head=getattr(output, "head", b""),
        tail=getattr(output, "tail", b""),
        total_bytes=getattr(output, "total_bytes", 0),
        truncated=getattr(output, "truncated", False),
    )


def finished_record(
    started: library_pb2.Execution,
    *,
    status: library_pb2.ExecutionStatus.ValueType,
    exit_code: int,
    ended_at: datetime | float,
    duration_ms: int,
    stdout: object = None,
    stderr: object = None,
    error_message: str = "",
) -> library_pb2.Execution:
    """The started record completed with the step's result."""
    record = library_pb2.Execution()
    record.CopyFrom(started)
    record.status = status
    record.exit_code = exit_code
    record.end_time.CopyFrom(timestamp(ended_at))
    if record.end_time.ToNanoseconds() < record.start_time.ToNanoseconds():
        record.end_time.CopyFrom(record.start_time)
    record.duration_ms = max(0, duration_ms)
    if stdout is not None:
        record.stdout.CopyFrom(captured(stdout))
    if stderr is not None:
        record.stderr.CopyFrom(captured(stderr))
    record.error_message = error_message[:4000]
    return record


def interrupted_record(started: library_pb2.Execution, *, now: float) -> library_pb2.Execution:
    """An attempt the executor lost (it was killed while the step ran): result unknown."""
    duration = int(now * 1000 - started.start_time.ToMilliseconds())
    return finished_record(
        started,
        status=library_pb2.EXECUTION_STATUS_FAILED,
        exit_code=-1,
        ended_at=now,
        duration_ms=duration,
        error_message="interrupted: the executor stopped while this step ran; its result "
        "is unknown",
    )
