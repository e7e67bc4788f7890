"""Backup runs: BeginBackup, EndBackup, RenewBackup, GetBackupRun as domain operations.

`begin` and `end` check the request, do what must happen before anything starts (the
plans and their content, the run row in the journal) and raise domain errors for a
request that cannot start. They then hand the chain to a task of its own and return a
`Started`: the RPC relays its events and, if the client leaves, calls ``client_gone``.
The chain does not die with the RPC: a cancelled BeginBackup kills its running pre hook,
and the post chain still runs (outcome CANCELLED); a cancelled EndBackup only stops
listening, its post chain runs to the end.

Decisions:
- Both plans (pre and post) are resolved, and all their content cached and verified (the
  post plan's also synced to disk), at BeginBackup before the run is written: a post
  chain owed later (lease expiry, restart) does not depend on the library being
  reachable then. Assignments changed during a run apply from the next run. The plans
  come from runs/plans.py: the library's, or the kept ones while it is unreachable.
- The lease starts at BeginBackup and starts again when the pre chain ends, so a long
  pre chain does not eat the time the backup has; RenewBackup moves it from now.
- A run with an empty pre chain that proceeds is owed its post chain like any other.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import structlog

from executor_service.chains.chain_runner import (
    PRE,
    ChainContext,
    ChainResult,
    ChainRunner,
    Stop,
    chain_steps,
)
from executor_service.chains.control import ChainControl, Lifecycle, StopReason
from executor_service.chains.events import EventStream
from executor_service.chains.summaries import plan_origin, recorded_end, run_view, summary
from executor_service.chains.variables import check_variables
from executor_service.clock import Clock
from executor_service.journal import KIND_BACKUP, KIND_INLINE, Journal, RunRecord
from executor_service.runs.admission import Admission, Slot
from executor_service.runs.checks import (
    DEFAULT_LEASE_SECONDS,
    MAX_PATH_LENGTH,
    check_lease,
    check_outcome,
    check_run_id,
    check_text,
)
from executor_service.runs.plans import PLAN_FROM_KEPT_COPY, PlanResolver, Plans
from executor_service.runs.promises import AWAITING_END, ENDED, POST_RUNNING, PRE_RUNNING, Promises
from executor_service.runs.retention import DEFAULT_RETENTION_SECONDS
from executor_service.tasks import TaskKeeper
from shared.errors import FailedPrecondition, InvalidArgument, NotFound, Violations
from shared.hook_policy import MAX_ID_LENGTH
from shared.stubs import executor_pb2, library_pb2

log = structlog.get_logger("hookshelf.executor.runs")

_OUTCOME_OF_STOP = {
    Stop.SKIP: library_pb2.BACKUP_OUTCOME_SKIPPED,
    Stop.ABORT: library_pb2.BACKUP_OUTCOME_ABORTED,
    Stop.CANCELLED: library_pb2.BACKUP_OUTCOME_CANCELLED,
}


@dataclass(frozen=True)
class BeginRequest:
    repository_id: str
    job_id: str = ""
    repository_path: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    lease_seconds: int = 0


@dataclass
class Started:
    """A chain on its way: its events, and what to do if the client leaves."""

    stream: EventStream
    client_gone: Callable[[], None] = lambda: None


class BackupRuns:
    """The run RPCs' domain."""

    def __init__(
        self,
        *,
        journal: Journal,
        plans: PlanResolver,
        chains: ChainRunner,
        promises: Promises,
        clock: Clock,
        lifecycle: Lifecycle,
        tasks: TaskKeeper,
        admission: Admission,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
    ) -> None:
        self.journal = journal
        self.retention_seconds = retention_seconds  # named when a run is not found
        self.plans = plans
        self.chains = chains
        self.promises = promises
        self.clock = clock
        self.lifecycle = lifecycle
        self.tasks = tasks
        self.admission = admission

    # --- BeginBackup ----------------------------------------------------------------------

    def check_begin(
        self, request: BeginRequest, field_prefix: str = ""
    ) -> tuple[int, dict[str, str]]:
        """The lease and the variables of a valid request; every bad field reported."""
        problems = Violations()
        check_text(
            problems,
            f"{field_prefix}repository_id",
            request.repository_id,
            limit=MAX_ID_LENGTH,
            required=True,
        )
        check_text(problems, f"{field_prefix}job_id", request.job_id, limit=MAX_ID_LENGTH)
        check_text(
            problems,
            f"{field_prefix}repository_path",
            request.repository_path,
            limit=MAX_PATH_LENGTH,
        )
        lease, variables = DEFAULT_LEASE_SECONDS, {}
        try:
            lease = check_lease(f"{field_prefix}lease_seconds", request.lease_seconds)
        except InvalidArgument as error:
            problems.items.extend(error.violations)
        try:
            variables = check_variables(f"{field_prefix}variables", request.variables)
        except InvalidArgument as error:
            problems.items.extend(error.violations)
        problems.raise_if_any()
        return lease, variables

    async def begin(
        self,
        request: BeginRequest,
        *,
        plans: Plans | None = None,
        kind: str = KIND_BACKUP,
        trigger: library_pb2.ExecutionTrigger.ValueType = library_pb2.EXECUTION_TRIGGER_BACKUP,
        on_open: Callable[[RunRecord], Awaitable[None]] | None = None,
    ) -> Started:
        """Open a run and start its pre chain. ``plans`` given (inline hooks, windows) or
        resolved from the library. ``on_open`` runs once the run is written (before any
        hook) and again when its pre chain said PROCEED (windows keep their holder there).
        """
        lease, variables = self.check_begin(request)
        await self._refuse_open_run(request.repository_id)
        # Before anything is asked of the library or started: a run whose journal rows
        # cannot be written must not begin (journal/space.py).
        await asyncio.to_thread(self.journal.space.check_room)
        slot = self.admission.admit()
        try:
            if plans is None:
                plans = await self.plans.for_backup(request.repository_id)
            now = self.clock.now()
            run = RunRecord(
                run_id=str(uuid.uuid4()),
                repository_id=request.repository_id,
                kind=kind,
                job_id=request.job_id,
                repository_path=request.repository_path,
                trigger=trigger,
                lease_seconds=lease,
                lease_expires_at=now + lease,
                variables=variables,
                post_plan=plans.post,
                created_at=now,
                plan_source=plans.source,
                plan_resolved_at=plans.resolved_at,
            )
            await self.journal.create_run(run, keep=plans.keep)
            if on_open is not None:
                await on_open(run)
        except BaseException:
            slot.release()
            raise
        log.info(
            "run.begun",
            run_id=run.run_id,
            repository_id=run.repository_id,
            pre_steps=len(plans.pre),
            post_steps=len(plans.post),
            plan_source=library_pb2.PlanSource.Name(plans.source),
        )
        stream = EventStream(run.run_id, summary_base=plan_origin(run))
        control = self.lifecycle.control()
        self.tasks.spawn(
            self._drive_begin(run, plans, stream, control, slot, on_open),
            name=f"begin {run.run_id}",
        )
        return Started(stream, client_gone=lambda: control.stop(StopReason.CLIENT))

    async def _refuse_open_run(self, repository_id: str) -> None:
        # The journal's unique index is the real guard; this answers early and cheaply,
        # before the library is asked for plans.
        run = await self.journal.open_run_for(repository_id)
        if run is not None:
            raise FailedPrecondition(
                f"repository {repository_id!r} already has an open run {run.run_id}; "
                "end it (EndBackup) first",
                metadata={"run_id": run.run_id, "repository_id": repository_id},
            )

    async def _drive_begin(
        self,
        run: RunRecord,
        plans: Plans,
        stream: EventStream,
        control: ChainControl,
        slot: Slot,
        on_open: Callable[[RunRecord], Awaitable[None]] | None = None,
    ) -> None:
        """The pre chain, then (ABORT, SKIP, cancel) the post chain, then one summary."""
        error: BaseException | None = None
        try:
            if plans.warning:
                await stream.emit(
                    warning=executor_pb2.WarningEvent(
                        reason=PLAN_FROM_KEPT_COPY, message=plans.warning
                    )
                )
            ctx = ChainContext.for_run(run, PRE)
            steps = chain_steps(plans.pre, PRE)
            if steps:
                # The promise binds from here: synced before the first child starts.
                await self.journal.update_run(run.run_id, pre_started=True)
            try:
                pre = await self.chains.run(ctx, steps, stream, control)
            finally:
                control.release()
            await self._after_pre(run, ctx, pre, stream, on_open)
        except Exception as failure:  # reported on the stream, logged
            log.exception("run.begin_failed", run_id=run.run_id)
            error = failure
        finally:
            slot.release()
            await stream.close(error)

    async def _after_pre(
        self,
        run: RunRecord,
        ctx: ChainContext,
        pre: ChainResult,
        stream: EventStream,
        on_open: Callable[[RunRecord], Awaitable[None]] | None,
    ) -> None:
        pre_summary = summary(
            [pre], verdict=pre.verdict, post_chain_ran=False, run_state=AWAITING_END
        )
        if pre.stop is Stop.SHUTDOWN:
            # The run stays PRE_RUNNING in the journal; the restart runs its post chain.
            await stream.emit(
                summary=summary(
                    [pre],
                    verdict=executor_pb2.VERDICT_ABORT,
                    post_chain_ran=False,
                    run_state=PRE_RUNNING,
                    message="the executor is shutting down: do not back up; the run's post "
                    "chain runs when the executor is back",
                )
            )
            return
        if pre.stop is None:
            run.lease_expires_at = self.clock.now() + run.lease_seconds
            await self.journal.update_run(
                run.run_id,
                state=AWAITING_END,
                verdict=executor_pb2.VERDICT_PROCEED,
                pre_started=True,
                lease_expires_at=run.lease_expires_at,
                variables=ctx.variables,
                pre_summary=pre_summary,
            )
            if on_open is not None:
                await on_open(run)
            await stream.emit(summary=pre_summary)
            return
        outcome = _OUTCOME_OF_STOP[pre.stop]
        pre_summary.run_state = POST_RUNNING
        await self.journal.update_run(
            run.run_id, verdict=pre.verdict, variables=ctx.variables, pre_summary=pre_summary
        )
        post = await self.promises.run_post(
            run.run_id,
            outcome,
            stream,
            expect=lambda r: r.state == PRE_RUNNING,
            verdict=pre.verdict,
        )
        if post is None or post.stop is Stop.SHUTDOWN:
            ran = post is None
            state = ENDED if ran else POST_RUNNING
            await stream.emit(
                summary=summary(
                    [pre] + ([post] if post else []),
                    verdict=pre.verdict,
                    outcome=outcome,
                    post_chain_ran=ran,
                    run_state=state,
                    message=""
                    if ran
                    else "the executor is shutting down: the rest of the "
                    "post chain runs when it is back",
                )
            )
            return
        await stream.emit(
            summary=summary(
                [pre, post],
                verdict=pre.verdict,
                outcome=outcome,
                post_chain_ran=True,
                run_state=ENDED,
            )
        )

    # --- EndBackup ------------------------------------------------------------------------

    async def end(
        self,
        run_id: str,
        outcome: int,
        variables: Mapping[str, str],
        *,
        kinds: tuple[str, ...] = (KIND_BACKUP, KIND_INLINE),
        field_prefix: str = "",
    ) -> Started:
        """Run the post chain of a run waiting for its end; for an ended run, replay its
        recorded summary without running anything. ``kinds``: the runs this RPC may end
        (a maintenance window ends with LeaveWindow, not EndBackup)."""
        problems = Violations()
        for check in (
            lambda: check_run_id(run_id),
            lambda: check_outcome(f"{field_prefix}outcome", outcome),
            lambda: check_variables(f"{field_prefix}variables", variables),
        ):
            try:
                check()
            except InvalidArgument as error:
                problems.items.extend(error.violations)
        problems.raise_if_any()
        reported = library_pb2.BackupOutcome.ValueType(outcome)  # checked just above
        run = await self._get(run_id)
        if run.kind not in kinds:
            raise FailedPrecondition(
                f"run {run_id} is a {run.kind} run; it is not ended this way",
                metadata={"run_id": run_id, "kind": run.kind},
            )
        if run.state == PRE_RUNNING:
            raise FailedPrecondition(
                f"run {run_id} is still in its pre chain; end it after BeginBackup's summary",
                metadata={"run_id": run_id},
            )
        stream = EventStream(run_id, summary_base=plan_origin(run))
        slot = self.admission.admit() if run.state == AWAITING_END else None
        self.tasks.spawn(
            self._drive_end(run_id, reported, dict(variables), stream, slot), name=f"end {run_id}"
        )
        # The client leaving does not stop a post chain.
        return Started(stream)

    async def _drive_end(
        self,
        run_id: str,
        outcome: library_pb2.BackupOutcome.ValueType,
        variables: dict[str, str],
        stream: EventStream,
        slot: Slot | None,
    ) -> None:
        error: BaseException | None = None
        try:
            post = await self.promises.run_post(
                run_id,
                outcome,
                stream,
                expect=lambda r: r.state == AWAITING_END,
                extra_variables=variables,
            )
            run = await self._get(run_id)
            if post is None or post.stop is not Stop.SHUTDOWN:
                await stream.emit(summary=recorded_end(run))
            else:
                await stream.emit(
                    summary=summary(
                        [post],
                        outcome=run.outcome,
                        post_chain_ran=False,
                        run_state=POST_RUNNING,
                        message="the executor is shutting down: the rest of the post chain "
                        "runs when it is back",
                    )
                )
        except Exception as failure:  # reported on the stream, logged
            log.exception("run.end_failed", run_id=run_id)
            error = failure
        finally:
            if slot is not None:
                slot.release()
            await stream.close(error)

    # --- RenewBackup, GetBackupRun --------------------------------------------------------

    async def renew(self, run_id: str, lease_seconds: int) -> float:
        """Move the lease to now + lease_seconds (the run's own length when 0)."""
        check_run_id(run_id)
        if lease_seconds:
            check_lease("lease_seconds", lease_seconds)
        run = await self._get(run_id)
        expires = self.clock.now() + (lease_seconds or run.lease_seconds)
        if run.state not in (PRE_RUNNING, AWAITING_END) or not await self.journal.extend_lease(
            run_id, expires
        ):
            raise FailedPrecondition(
                f"run {run_id} is ending or has ended; there is no lease to renew",
                metadata={"run_id": run_id},
            )
        return expires

    async def get(self, run_id: str) -> executor_pb2.BackupRun:
        check_run_id(run_id)
        run = await self._get(run_id)
        return run_view(run, await self.journal.steps_of(run_id))

    async def _get(self, run_id: str) -> RunRecord:
        run = await self.journal.get_run(run_id)
        if run is None:
            raise NotFound(
                f"no run {run_id!r} in this executor's journal: it never ran here, or it "
                "ended and was pruned after the retention "
                f"(HOOKSHELF_EXECUTOR_JOURNAL_RETENTION_SECONDS={self.retention_seconds}); "
                "its steps are in the library's history",
                metadata={"run_id": run_id},
            )
        return run
