"""The promise: once a pre hook of a run started, its post chain runs exactly once.

Every path that ends a run goes through `Promises.run_post`, which claims the run under
its lock: it re-reads the run from the journal and goes on only if the run is still in
the state the caller expects, then marks it POST_RUNNING (synced) and runs the chain
while holding the lock. Whoever comes second (EndBackup racing the lease watcher, a
second EndBackup) waits for the lock, finds the run ENDED and gets the recorded summary.
The paths:

- EndBackup (AWAITING_END → outcome from the client);
- a pre chain that ended in ABORT / SKIP / a client cancel (PRE_RUNNING → ABORTED /
  SKIPPED / CANCELLED), run by the BeginBackup driver, in a task that does not die with
  the RPC;
- lease expiry (AWAITING_END past its lease → ABORTED), by the lease watcher;
- a restart (`recover`): a run left PRE_RUNNING with a pre hook started → ABORTED; a run
  left POST_RUNNING → the same post chain *resumed*: steps that have a finished result
  in the journal are not run again, the step the crash interrupted is run again (post
  hooks restart services: running one twice is safer than not at all). A run left
  AWAITING_END keeps its lease and is ended by EndBackup or the watcher as usual.

A shutdown (SIGTERM) stops chains between steps and leaves the run in its state in the
journal: the restart finishes it as above.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import structlog

from executor_service.chains import records
from executor_service.chains.chain_runner import (
    POST,
    ChainContext,
    ChainResult,
    ChainRunner,
    Stop,
    chain_steps,
)
from executor_service.chains.control import Lifecycle
from executor_service.chains.events import EventStream
from executor_service.chains.summaries import summary
from executor_service.clock import Clock
from executor_service.journal import Journal, RunRecord
from executor_service.tasks import TaskKeeper
from shared.stubs import executor_pb2, library_pb2

log = structlog.get_logger("hookshelf.executor.promises")

PRE_RUNNING = executor_pb2.RUN_STATE_PRE_RUNNING
AWAITING_END = executor_pb2.RUN_STATE_AWAITING_END
POST_RUNNING = executor_pb2.RUN_STATE_POST_RUNNING
ENDED = executor_pb2.RUN_STATE_ENDED

LEASE_CHECK_INTERVAL = 1.0


class Promises:
    """Runs owed post chains, once."""

    def __init__(
        self,
        *,
        journal: Journal,
        chains: ChainRunner,
        clock: Clock,
        lifecycle: Lifecycle,
        tasks: TaskKeeper,
        on_recorded: Callable[[], None] = lambda: None,
    ) -> None:
        self.journal = journal
        self.chains = chains
        self.clock = clock
        self.lifecycle = lifecycle
        self.tasks = tasks
        self.on_recorded = on_recorded
        self._locks: dict[str, asyncio.Lock] = {}
        self._expiring: set[str] = set()

    def lock(self, run_id: str) -> asyncio.Lock:
        """The run's lock: held while its post chain is claimed and run."""
        return self._locks.setdefault(run_id, asyncio.Lock())

    async def run_post(
        self,
        run_id: str,
        outcome: library_pb2.BackupOutcome.ValueType,
        stream: EventStream,
        *,
        expect: Callable[[RunRecord], bool],
        extra_variables: Mapping[str, str] | None = None,
        verdict: int = 0,
    ) -> ChainResult | None:
        """Claim the run and run its post chain for ``outcome``.

        Returns the chain's result, or None when the run was not in the expected state
        (another path ended it, or is ending it). A run left POST_RUNNING is resumed with
        its recorded outcome. Ends the run (ENDED, post summary, synced) unless the chain
        was stopped by a shutdown, which leaves it POST_RUNNING for the restart.
        """
        async with self.lock(run_id):
            run = await self.journal.get_run(run_id)
            if run is None or not run.is_open or not expect(run):
                return None
            if run.state != POST_RUNNING:
                run.variables = {**run.variables, **(extra_variables or {})}
                run.outcome = outcome
                changes: dict[str, object] = {
                    "state": POST_RUNNING,
                    "outcome": outcome,
                    "variables": run.variables,
                }
                if verdict:
                    changes["verdict"] = verdict
                await self.journal.update_run(run_id, **changes)
            done = await self.journal.done_steps(run_id, POST)
            ctx = ChainContext.for_run(run, POST)
            control = self.lifecycle.control()
            try:
                result = await self.chains.run(
                    ctx, chain_steps(run.post_plan, POST), stream, control, done=done
                )
            finally:
                control.release()
            if result.stop is Stop.SHUTDOWN:
                log.info("post_chain.interrupted_by_shutdown", run_id=run_id)
                return result
            await self.journal.update_run(
                run_id,
                state=ENDED,
                post_chain_done=True,
                variables=ctx.variables,
                post_summary=summary(
                    [result],
                    outcome=run.outcome,
                    post_chain_ran=True,
                    run_state=ENDED,
                ),
                ended_at=self.clock.now(),
            )
            log.info(
                "post_chain.done",
                run_id=run_id,
                outcome=library_pb2.BackupOutcome.Name(run.outcome),
                succeeded=result.succeeded,
                failed=result.failed,
                skipped=result.skipped,
            )
        self._locks.pop(run_id, None)
        return result

    def run_post_in_background(
        self,
        run_id: str,
        outcome: library_pb2.BackupOutcome.ValueType,
        *,
        expect: Callable[[RunRecord], bool],
        verdict: int = 0,
    ) -> None:
        """Run an owed post chain with nobody listening."""
        self.tasks.spawn(
            self.run_post(
                run_id, outcome, EventStream.nowhere(run_id), expect=expect, verdict=verdict
            ),
            name=f"post chain {run_id}",
        )

    # --- leases ---------------------------------------------------------------------------

    async def expire_due(self) -> int:
        """End every run waiting for EndBackup whose lease ran out (outcome ABORTED).
        Returns how many it started."""
        started = 0
        for run_id in await self.journal.expired_runs(self.clock.now()):
            if run_id in self._expiring or self.lifecycle.draining:
                continue
            self._expiring.add(run_id)
            started += 1
            self.tasks.spawn(self._expire(run_id), name=f"lease expiry {run_id}")
        return started

    async def _expire(self, run_id: str) -> None:
        now = self.clock.now()

        def still_expired(run: RunRecord) -> bool:
            # Re-checked under the lock: a RenewBackup or EndBackup may have won.
            return run.state == AWAITING_END and run.lease_expires_at <= now

        try:
            log.warning("lease.expired", run_id=run_id)
            await self.run_post(
                run_id,
                library_pb2.BACKUP_OUTCOME_ABORTED,
                EventStream.nowhere(run_id),
                expect=still_expired,
            )
        finally:
            self._expiring.discard(run_id)

    async def watch_leases(self, interval: float = LEASE_CHECK_INTERVAL) -> None:
        """The lease watcher: runs until cancelled."""
        while True:
            try:
                await self.expire_due()
            except Exception:  # the watcher must outlive one bad pass
                log.exception("lease.watch_failed")
            await asyncio.sleep(interval)

    # --- restart --------------------------------------------------------------------------

    async def recover(self) -> None:
        """Honour what the journal holds after a stop or a crash (see the module doc)."""
        now = self.clock.now()
        for step in await self.journal.unfinished_steps():
            await self.journal.step_finished(
                records.interrupted_record(step.record, now=now), ended_at=now, done=False
            )
            log.warning(
                "step.interrupted",
                run_id=step.run_id,
                script=step.script_name,
                execution_id=step.execution_id,
            )
        self.on_recorded()
        for run in await self.journal.open_runs():
            if run.state == PRE_RUNNING and run.pre_started:
                log.warning("recover.pre_chain_interrupted", run_id=run.run_id)
                self.run_post_in_background(
                    run.run_id,
                    library_pb2.BACKUP_OUTCOME_ABORTED,
                    expect=lambda r: r.state == PRE_RUNNING,
                    verdict=executor_pb2.VERDICT_ABORT,
                )
            elif run.state == PRE_RUNNING:
                # No hook had started: nothing is owed.
                await self.journal.update_run(
                    run.run_id,
                    state=ENDED,
                    verdict=executor_pb2.VERDICT_ABORT,
                    ended_at=now,
                    post_summary=executor_pb2.SummaryEvent(
                        run_state=ENDED,
                        message="the executor stopped before any pre hook started; "
                        "no post chain was owed",
                    ),
                )
            elif run.state == POST_RUNNING:
                log.warning("recover.post_chain_resumed", run_id=run.run_id)
                self.run_post_in_background(
                    run.run_id, run.outcome, expect=lambda r: r.state == POST_RUNNING
                )
