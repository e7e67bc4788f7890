"""Shaping results for clients: summary events and the BackupRun view."""

from __future__ import annotations

from collections.abc import Sequence

from executor_service.chains.chain_runner import ChainResult
from executor_service.chains.records import timestamp
from executor_service.journal import RunRecord, StepRow
from shared.stubs import executor_pb2, library_pb2


def _name(enum: object, value: int, prefix: str) -> str:
    return enum.Name(value).removeprefix(prefix)  # type: ignore[attr-defined]  # any generated enum wrapper, typed object here


def describe(result: ChainResult) -> str:
    """``pre chain: 2 succeeded, 1 failed, 1 skipped (db-dump failed (on_error ABORT))``."""
    chain = "pre" if result.hook_type == library_pb2.HOOK_TYPE_PRE_BACKUP else "post"
    text = (
        f"{chain} chain: {result.succeeded} succeeded, {result.failed} failed, "
        f"{result.skipped} skipped"
    )
    if result.stop_detail:
        text += f"; stopped: {result.stop_detail}"
    return text


def summary(
    results: Sequence[ChainResult],
    *,
    verdict: executor_pb2.Verdict.ValueType = executor_pb2.VERDICT_UNSPECIFIED,
    outcome: library_pb2.BackupOutcome.ValueType = library_pb2.BACKUP_OUTCOME_UNSPECIFIED,
    post_chain_ran: bool,
    run_state: executor_pb2.RunState.ValueType,
    message: str = "",
) -> executor_pb2.SummaryEvent:
    """The one summary of a stream that ran ``results`` (one or two chains)."""
    variables: dict[str, str] = {}
    for result in results:
        variables.update(result.outputs)
    parts = [describe(result) for result in results]
    if verdict:
        parts.append(f"verdict {_name(executor_pb2.Verdict, verdict, 'VERDICT_')}")
    if outcome and post_chain_ran:
        parts.append(
            f"post chain ran for outcome "
            f"{_name(library_pb2.BackupOutcome, outcome, 'BACKUP_OUTCOME_')}"
        )
    if message:
        parts.append(message)
    return executor_pb2.SummaryEvent(
        verdict=verdict,
        outcome=outcome,
        variables=variables,
        succeeded_count=sum(r.succeeded for r in results),
        failed_count=sum(r.failed for r in results),
        skipped_count=sum(r.skipped for r in results),
        post_chain_ran=post_chain_ran,
        message="; ".join(parts),
        run_state=run_state,
    )


def plan_origin(run: RunRecord) -> executor_pb2.SummaryEvent:
    """The part of every summary of a run that says where its plans came from (empty for
    runs that are not backups); merged into each summary a client gets."""
    origin = executor_pb2.SummaryEvent(plan_source=run.plan_source)
    if run.plan_resolved_at is not None:
        origin.plan_resolve_time.CopyFrom(timestamp(run.plan_resolved_at))
    return origin


def recorded_end(run: RunRecord) -> executor_pb2.SummaryEvent:
    """What EndBackup answers for a run that already ended: its recorded post summary."""
    if run.post_summary is not None:
        found = executor_pb2.SummaryEvent()
        found.CopyFrom(run.post_summary)
        found.run_state = run.state
    else:
        found = executor_pb2.SummaryEvent(
            verdict=run.verdict,
            outcome=run.outcome,
            post_chain_ran=run.post_chain_done,
            run_state=run.state,
            message="the run has no post summary yet",
        )
    found.MergeFrom(plan_origin(run))
    return found


def run_view(run: RunRecord, steps: Sequence[StepRow]) -> executor_pb2.BackupRun:
    """A run as GetBackupRun shows it (attempts cut short by a restart included)."""
    view = executor_pb2.BackupRun(
        run_id=run.run_id,
        repository_id=run.repository_id,
        job_id=run.job_id,
        state=run.state,
        verdict=run.verdict,
        outcome=run.outcome,
        lease_expire_time=timestamp(run.lease_expires_at),
        create_time=timestamp(run.created_at),
        plan_source=run.plan_source,
        steps=[
            executor_pb2.StepResult(
                hook_type=step.hook_type,
                step_index=step.step_index,
                execution_id=step.execution_id,
                script_name=step.script_name,
                status=step.status,
                exit_code=step.exit_code,
                duration_ms=step.duration_ms,
            )
            for step in steps
        ],
    )
    if run.ended_at is not None:
        view.end_time.CopyFrom(timestamp(run.ended_at))
    if run.plan_resolved_at is not None:
        view.plan_resolve_time.CopyFrom(timestamp(run.plan_resolved_at))
    if run.pre_summary is not None:
        view.pre_summary.CopyFrom(run.pre_summary)
        view.pre_summary.MergeFrom(plan_origin(run))
    if run.post_summary is not None:
        view.post_summary.CopyFrom(run.post_summary)
        view.post_summary.MergeFrom(plan_origin(run))
    return view
