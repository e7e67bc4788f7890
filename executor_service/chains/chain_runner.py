"""Running one hook chain: its steps in order, the failure policy, the events.

Domain only (no grpc). For each planned step, in order:
- a chain that stopped skips the rest (StepSkipped CHAIN_STOPPED, or SHUTTING_DOWN when
  the executor is draining); a post step whose effective run_on does not match the
  outcome is skipped (RUN_ON_MISMATCH, `shared.hook_policy.run_on_matches`);
- otherwise the attempt is journaled *before* its process starts, the content is taken
  from the verified cache, the environment is built from scratch, the runner runs it and
  streams its output, and the result and its execution record are journaled in one
  transaction (the recorder delivers it) before anything else happens: together with the
  next step's attempt when one follows (one commit per step), alone otherwise. That
  transaction is synced while the chain goes on; the step's finished event and its
  record's delivery wait for the sync (`Journal.commit_step_result`).

Policy (DESIGN §2): exit 0 succeeds; exit 75 (SKIP_REQUESTED) in a pre chain stops it
with verdict SKIP; any other failure follows ``on_error``: ABORT stops the chain (verdict
ABORT), CONTINUE goes on, SKIP_BACKUP stops it with verdict SKIP. In a post chain there is
no backup left to skip: exit 75 counts as success and SKIP_BACKUP stops the chain like
ABORT. Output variables (``$HOOKSHELF_OUTPUT``) become variables of the later steps.

A resumed chain (after a restart) passes the steps that already have a result that
counts (`done`): they are not run again, but their results still drive the policy.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from executor_service.chains import records
from executor_service.chains.control import ChainControl, StopReason
from executor_service.chains.events import EventStream
from executor_service.chains.prepared_steps import PreparedStep, ReadyStep
from executor_service.chains.variables import system_variables
from executor_service.clock import Clock, iso_utc
from executor_service.journal import Journal, RunRecord, StepRow
from executor_service.library.content_cache import ContentCache
from executor_service.runner.environment import build_environment
from executor_service.runner.output import OutputChunk
from executor_service.runner.redaction import redact_text
from executor_service.runner.step import StepSpec, run_step
from executor_service.runner.workspace import WorkspacePool
from shared.errors import HookshelfError
from shared.hook_policy import DEFAULT_ON_ERROR, DEFAULT_TIMEOUT_SECONDS, run_on_matches
from shared.stubs import executor_pb2, library_pb2

log = structlog.get_logger("hookshelf.executor.chains")

PRE = library_pb2.HOOK_TYPE_PRE_BACKUP
POST = library_pb2.HOOK_TYPE_POST_BACKUP
_SUCCESS = (library_pb2.EXECUTION_STATUS_SUCCEEDED, library_pb2.EXECUTION_STATUS_SKIP_REQUESTED)
NO_EXIT_CODE = -1  # the step never ran (content unavailable, bad environment)


class Stop(enum.Enum):
    """Why a chain stopped before its end."""

    ABORT = "abort"
    SKIP = "skip"
    CANCELLED = "cancelled"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True)
class ChainStep:
    """One step as the chain runs it: effective settings, defaults applied."""

    index: int
    script_id: str
    script_name: str
    digest: str
    timeout_seconds: int
    run_on: library_pb2.RunOn.ValueType
    on_error: library_pb2.OnError.ValueType
    parameter_values: Mapping[str, str] = field(default_factory=dict)
    secret_names: tuple[str, ...] = ()

    @classmethod
    def from_plan(cls, index: int, step: library_pb2.PlanStep, hook_type: int) -> ChainStep:
        return cls(
            index=index,
            script_id=step.script_id,
            script_name=step.script_name,
            digest=step.digest,
            timeout_seconds=step.timeout_seconds or DEFAULT_TIMEOUT_SECONDS,
            run_on=step.run_on or library_pb2.RUN_ON_SUCCESS,
            on_error=step.on_error or DEFAULT_ON_ERROR[hook_type],
            parameter_values=dict(step.parameter_values),
            secret_names=tuple(step.secret_parameter_names),
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(
            self.parameter_values[n] for n in self.secret_names if n in self.parameter_values
        )

    def planned(self) -> executor_pb2.PlannedStep:
        return executor_pb2.PlannedStep(
            index=self.index,
            script_id=self.script_id,
            script_name=self.script_name,
            digest=self.digest,
            timeout_seconds=self.timeout_seconds,
            run_on=self.run_on,
            on_error=self.on_error,
        )


def chain_steps(plan: Sequence[library_pb2.PlanStep], hook_type: int) -> list[ChainStep]:
    return [ChainStep.from_plan(i, step, hook_type) for i, step in enumerate(plan)]


@dataclass
class ChainContext:
    """What a chain runs for. ``variables`` grows with the steps' output variables."""

    run_id: str
    repository_id: str
    hook_type: library_pb2.HookType.ValueType
    trigger: library_pb2.ExecutionTrigger.ValueType
    backup_date: str
    job_id: str = ""
    repository_path: str = ""
    outcome: library_pb2.BackupOutcome.ValueType = library_pb2.BACKUP_OUTCOME_UNSPECIFIED
    variables: dict[str, str] = field(default_factory=dict)
    # Where the run's plans came from; every record of the chain says so.
    plan_source: library_pb2.PlanSource.ValueType = library_pb2.PLAN_SOURCE_UNSPECIFIED
    plan_resolved_at: float | None = None

    @classmethod
    def for_run(cls, run: RunRecord, hook_type: library_pb2.HookType.ValueType) -> ChainContext:
        """The context of one chain of a journaled run; a post chain runs for its outcome."""
        return cls(
            run_id=run.run_id,
            repository_id=run.repository_id,
            hook_type=hook_type,
            trigger=run.trigger,
            backup_date=iso_utc(run.created_at),
            job_id=run.job_id,
            repository_path=run.repository_path,
            outcome=(run.outcome if hook_type == POST else library_pb2.BACKUP_OUTCOME_UNSPECIFIED),
            variables=dict(run.variables),
            plan_source=run.plan_source,
            plan_resolved_at=run.plan_resolved_at,
        )


@dataclass
class ChainResult:
    """How a chain went."""

    hook_type: library_pb2.HookType.ValueType
    stop: Stop | None = None
    stop_detail: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def verdict(self) -> executor_pb2.Verdict.ValueType:
        """What a pre chain says about the backup."""
        if self.stop is None:
            return executor_pb2.VERDICT_PROCEED
        if self.stop is Stop.SKIP:
            return executor_pb2.VERDICT_SKIP
        return executor_pb2.VERDICT_ABORT

    def halt(self, stop: Stop, detail: str) -> None:
        if self.stop is None:
            self.stop, self.stop_detail = stop, detail


@dataclass
class _StepOutcome:
    """A step's result, not yet journaled: it goes in with the next step's attempt, or
    alone when no step of the chain follows (`ChainRunner._journal_result`)."""

    step: ChainStep
    record: library_pb2.Execution
    ended_at: float
    done: bool  # False: cut short by a shutdown, run again by a resumed chain
    outputs: dict[str, str]
    stdout_bytes: int
    stderr_bytes: int
    journaled: bool = False  # committed (announcing it may still have failed)


class ChainRunner:
    """Runs chains; shared by every RPC that runs hooks."""

    def __init__(
        self,
        *,
        journal: Journal,
        cache: ContentCache,
        clock: Clock,
        work_root: Path,
        executor_id: str,
        on_recorded: Callable[[], None] = lambda: None,
        on_chain_ended: Callable[[], None] = lambda: None,
    ) -> None:
        self.journal = journal
        self.cache = cache
        self.clock = clock
        self.work_root = work_root
        self.workspaces = WorkspacePool(work_root)
        self.executor_id = executor_id
        self.on_recorded = on_recorded
        self.on_chain_ended = on_chain_ended

    async def run(
        self,
        ctx: ChainContext,
        steps: Sequence[ChainStep],
        stream: EventStream,
        control: ChainControl,
        *,
        done: Mapping[int, StepRow] | None = None,
    ) -> ChainResult:
        """Run the chain, streaming its events (no summary: the caller owns that)."""
        done = done or {}
        await stream.emit(
            plan=executor_pb2.PlanEvent(
                hook_type=ctx.hook_type,
                steps=[step.planned() for step in steps],
                outcome=(
                    ctx.outcome if ctx.hook_type == POST else library_pb2.BACKUP_OUTCOME_UNSPECIFIED
                ),
            )
        )
        result = ChainResult(hook_type=ctx.hook_type)
        # A hook may hand a secret on through $HOOKSHELF_OUTPUT: later steps get the real
        # value, the variables returned to the client are redacted like output.
        chain_secrets = tuple(secret for step in steps for secret in step.secrets)
        # The next step to run is made ready while this one runs (prepared_steps.py).
        upcoming: PreparedStep | None = None
        # The last step's result, journaled with the next step's attempt (or alone).
        unjournaled: _StepOutcome | None = None
        try:
            for position, step in enumerate(steps):
                prepared, upcoming = upcoming, None
                previous = done.get(step.index)
                if previous is not None:
                    # Ran before a restart: its result counts, it does not run again.
                    await self._journal_result(ctx, unjournaled, stream)
                    unjournaled = None
                    status = previous.status
                    outputs = previous.outputs
                else:
                    skip = self._skip(ctx, step, result, control)
                    if skip is not None:
                        await self._journal_result(ctx, unjournaled, stream)
                        unjournaled = None
                        if prepared is not None:
                            await prepared.drop()
                        reason, detail = skip
                        result.skipped += 1
                        await stream.emit(
                            step_skipped=executor_pb2.StepSkippedEvent(
                                step_index=step.index,
                                script_name=step.script_name,
                                reason=reason,
                                detail=detail,
                            )
                        )
                        continue
                    prepared = prepared or self._prepare(step)
                    following = steps[position + 1] if position + 1 < len(steps) else None
                    if following is not None and following.index not in done:
                        upcoming = self._prepare(following)
                    attempt = await self._note_attempt(ctx, step, prepared, stream, unjournaled)
                    unjournaled = None  # journaled with the attempt
                    unjournaled = await self._run_step(
                        ctx, step, stream, control, prepared, attempt
                    )
                    status, outputs = unjournaled.record.status, unjournaled.outputs
                ctx.variables.update(outputs)
                result.outputs.update(
                    {key: redact_text(value, chain_secrets) for key, value in outputs.items()}
                )
                self._judge(ctx, step, status, result, control)
            await self._journal_result(ctx, unjournaled, stream)
            unjournaled = None
        finally:
            try:
                if unjournaled is not None and not unjournaled.journaled:
                    # Cancelled (or failed) between two steps: the result still counts.
                    await self._journal_result(ctx, unjournaled, stream)
            finally:
                if upcoming is not None:
                    await upcoming.drop()
        # The last results' syncs first: the recorder's flush then finds their records.
        await self.journal.synced()
        self.on_chain_ended()
        return result

    def _skip(
        self, ctx: ChainContext, step: ChainStep, result: ChainResult, control: ChainControl
    ) -> tuple[executor_pb2.SkipReason.ValueType, str] | None:
        """Why this step does not run, or None."""
        if result.stop is None and control.reason is StopReason.CLIENT:
            result.halt(Stop.CANCELLED, StopReason.CLIENT.value)
        if result.stop is None and (control.draining or control.reason is StopReason.SHUTDOWN):
            result.halt(Stop.SHUTDOWN, StopReason.SHUTDOWN.value)
        if result.stop is Stop.SHUTDOWN:
            return executor_pb2.SKIP_REASON_SHUTTING_DOWN, result.stop_detail
        if result.stop is not None:
            return executor_pb2.SKIP_REASON_CHAIN_STOPPED, result.stop_detail
        if ctx.hook_type == POST and not run_on_matches(step.run_on, ctx.outcome):
            detail = (
                f"run_on {library_pb2.RunOn.Name(step.run_on)} does not match outcome "
                f"{library_pb2.BackupOutcome.Name(ctx.outcome)}"
            )
            return executor_pb2.SKIP_REASON_RUN_ON_MISMATCH, detail
        return None

    @staticmethod
    def _judge(
        ctx: ChainContext,
        step: ChainStep,
        status: library_pb2.ExecutionStatus.ValueType,
        result: ChainResult,
        control: ChainControl,
    ) -> None:
        """Count the step and apply the failure policy."""
        pre = ctx.hook_type == PRE
        name = step.script_name
        if status in _SUCCESS:
            result.succeeded += 1
            if pre and status == library_pb2.EXECUTION_STATUS_SKIP_REQUESTED:
                result.halt(Stop.SKIP, f"{name} asked to skip the backup (exit 75)")
            return
        result.failed += 1
        if status == library_pb2.EXECUTION_STATUS_CANCELLED:
            if control.reason is StopReason.SHUTDOWN:
                result.halt(Stop.SHUTDOWN, f"{name} was killed: {StopReason.SHUTDOWN.value}")
            else:
                result.halt(Stop.CANCELLED, f"{name} was killed: {StopReason.CLIENT.value}")
            return
        how = library_pb2.ExecutionStatus.Name(status).removeprefix("EXECUTION_STATUS_")
        if step.on_error == library_pb2.ON_ERROR_CONTINUE:
            return
        if step.on_error == library_pb2.ON_ERROR_SKIP_BACKUP and pre:
            result.halt(Stop.SKIP, f"{name} {how.lower()} (on_error SKIP_BACKUP)")
            return
        policy = library_pb2.OnError.Name(step.on_error).removeprefix("ON_ERROR_")
        result.halt(Stop.ABORT, f"{name} {how.lower()} (on_error {policy})")

    def _prepare(self, step: ChainStep) -> PreparedStep:
        return PreparedStep(self.cache, self.workspaces, step.index, step.script_name, step.digest)

    async def _note_attempt(
        self,
        ctx: ChainContext,
        step: ChainStep,
        prepared: PreparedStep,
        stream: EventStream,
        before: _StepOutcome | None,
    ) -> tuple[library_pb2.Execution, float]:
        """Journal the attempt before its process starts, with the result of the step
        before it when that is not journaled yet (one transaction), and announce both.
        Returns the attempt's started record and time."""
        execution_id = prepared.execution_id
        started_at = self.clock.now()
        started = records.started_record(
            execution_id=execution_id,
            script_id=step.script_id,
            script_name=step.script_name,
            digest=step.digest,
            repository_id=ctx.repository_id,
            job_id=ctx.job_id,
            run_id=ctx.run_id,
            hook_type=ctx.hook_type,
            trigger=ctx.trigger,
            backup_outcome=(
                ctx.outcome if ctx.hook_type == POST else library_pb2.BACKUP_OUTCOME_UNSPECIFIED
            ),
            executor_id=self.executor_id,
            started_at=started_at,
            plan_source=ctx.plan_source,
            plan_resolved_at=ctx.plan_resolved_at,
        )
        attempt = StepRow(
            execution_id=execution_id,
            run_id=ctx.run_id,
            hook_type=ctx.hook_type,
            step_index=step.index,
            script_name=step.script_name,
            started_at=started_at,
            record=started,
        )
        if before is None:
            await self.journal.step_started(attempt)
        else:
            await self._journal_result(ctx, before, stream, then_started=attempt)
        # Sent once the previous step's finished event is (which waits for that result's
        # sync): the process need not wait for either.
        await stream.emit_after(
            None,
            step_started=executor_pb2.StepStartedEvent(
                step_index=step.index,
                execution_id=execution_id,
                script_name=step.script_name,
                digest=step.digest,
                hook_type=ctx.hook_type,
            ),
        )
        return started, started_at

    async def _run_step(
        self,
        ctx: ChainContext,
        step: ChainStep,
        stream: EventStream,
        control: ChainControl,
        prepared: PreparedStep,
        attempt: tuple[library_pb2.Execution, float],
    ) -> _StepOutcome:
        """Run a noted attempt (`_note_attempt`) to its end. Returns its result, not yet
        journaled (see `_journal_result`)."""
        execution_id = prepared.execution_id
        started, started_at = attempt

        async def emit_output(chunk: OutputChunk) -> None:
            await stream.emit_output(
                step_index=step.index,
                execution_id=execution_id,
                stream=chunk.stream,
                data=chunk.data,
                offset=chunk.offset,
            )

        outputs: dict[str, str] = {}
        ready: ReadyStep | None = None
        try:
            ready = await prepared.take()
            environment = build_environment(
                system=system_variables(
                    run_id=ctx.run_id,
                    job_id=ctx.job_id,
                    repository_id=ctx.repository_id,
                    repository_path=ctx.repository_path,
                    hook_type=ctx.hook_type,
                    outcome=ctx.outcome,
                    backup_date=ctx.backup_date,
                    script_name=step.script_name,
                    execution_id=execution_id,
                ),
                variables=ctx.variables,
                parameters=dict(step.parameter_values),
            )
        except BaseException as error:
            if ready is not None:
                self.workspaces.give_back(ready.workspace)  # the step does not run
            if not isinstance(error, HookshelfError):
                raise
            # The step cannot start: a failed step (an event), not an RPC error.
            ended_at = self.clock.now()
            record = records.finished_record(
                started,
                status=library_pb2.EXECUTION_STATUS_FAILED,
                exit_code=NO_EXIT_CODE,
                ended_at=ended_at,
                duration_ms=int((ended_at - started_at) * 1000),
                error_message=f"could not start: {error.message}",
            )
            stdout_bytes = stderr_bytes = 0
        else:
            spec = StepSpec(
                execution_id=execution_id,
                script_name=step.script_name,
                content=ready.content,
                digest=step.digest,
                timeout_seconds=float(step.timeout_seconds),
                environment=environment,
                secrets=step.secrets,
            )
            try:
                result = await run_step(
                    spec,
                    emit_output,
                    work_root=self.work_root,
                    cancel=control.kill,
                    workspace=ready.workspace,
                    script=ready.script,
                )
            finally:
                # Once the loop next turns, which on the way to the next step is after its
                # process started: checking the workspace need not hold that up.
                asyncio.get_running_loop().call_soon(self.workspaces.give_back, ready.workspace)
            ended_at = self.clock.now()
            outputs = dict(result.output_variables)
            record = records.finished_record(
                started,
                status=result.status,
                exit_code=result.exit_code if result.exit_code is not None else NO_EXIT_CODE,
                ended_at=result.ended_at or ended_at,
                duration_ms=result.duration_ms,
                stdout=result.stdout,
                stderr=result.stderr,
                error_message="; ".join(
                    [
                        *filter(None, [result.error_message]),
                        *(f"warning: {w}" for w in result.warnings),
                    ]
                ),
            )
            stdout_bytes, stderr_bytes = result.stdout.total_bytes, result.stderr.total_bytes
        # A step killed by a shutdown did not finish: a resumed chain runs it again.
        interrupted = (
            record.status == library_pb2.EXECUTION_STATUS_CANCELLED
            and control.reason is StopReason.SHUTDOWN
        )
        return _StepOutcome(
            step=step,
            record=record,
            ended_at=ended_at,
            done=not interrupted,
            outputs=outputs,
            stdout_bytes=stdout_bytes,
            stderr_bytes=stderr_bytes,
        )

    async def _journal_result(
        self,
        ctx: ChainContext,
        outcome: _StepOutcome | None,
        stream: EventStream,
        *,
        then_started: StepRow | None = None,
    ) -> None:
        """Commit a step's result with its record (and the next attempt, if given), and
        announce it. Committed, it survives the executor being killed; it is synced while
        the chain goes on, and the finished event and the record's delivery wait for the
        sync."""
        if outcome is None:
            return
        record, step = outcome.record, outcome.step
        synced = await self.journal.commit_step_result(
            record,
            ended_at=outcome.ended_at,
            done=outcome.done,
            outputs=outcome.outputs,
            then_started=then_started,
        )
        outcome.journaled = True
        synced.add_done_callback(lambda _: self.on_recorded())
        await stream.emit_after(
            synced,
            step_finished=executor_pb2.StepFinishedEvent(
                step_index=step.index,
                execution_id=record.execution_id,
                script_name=step.script_name,
                status=record.status,
                exit_code=record.exit_code,
                duration_ms=record.duration_ms,
                digest=step.digest,
                stdout_bytes=outcome.stdout_bytes,
                stderr_bytes=outcome.stderr_bytes,
                error_message=record.error_message,
            ),
        )
        # Every result is in the journal and the library; a log line per successful step
        # is noise (and a measurable part of a trivial step), so those are debug.
        log_finished = log.debug if record.status in _SUCCESS else log.info
        log_finished(
            "step.finished",
            run_id=ctx.run_id,
            script=step.script_name,
            status=library_pb2.ExecutionStatus.Name(record.status),
            exit_code=record.exit_code,
            duration_ms=record.duration_ms,
        )
