"""Maintenance windows: EnterWindow / LeaveWindow.

An open window is a run of kind ``window`` (repository id ``window:<id>``, so one open
window per id) with the promise of any run: its pre scripts run when the first holder
enters, its post scripts when the last holder leaves — or, should every holder vanish,
when the last lease runs out (outcome ABORTED, by the lease watcher, as for a backup run).
Holders are rows with a lease each; the run's lease is the latest of them. A holder whose
lease ran out is let go at the next Enter or Leave; entering again with the same
holder id renews its lease.

Decisions:
- The window's scripts are read from the library when it opens (current versions, the
  scripts' parameter defaults and timeouts) and its post scripts are stored with the run.
- Window post scripts run for every outcome (run_on ALWAYS): they undo what the pre
  scripts did (start what was stopped), which must happen however the work went.
- Entering while the window is opening (its pre scripts run) or closing is
  FAILED_PRECONDITION: enter again once that is done.
- A window whose pre scripts fail (ABORT, SKIP) runs its post scripts at once and does
  not open; the entering holder gets verdict ABORT / SKIP.
"""

from __future__ import annotations

import asyncio

from executor_service.chains.events import EventStream
from executor_service.clock import Clock
from executor_service.journal import KIND_WINDOW, Journal, RunRecord
from executor_service.library.content_cache import ContentCache
from executor_service.library.port import LibraryPort
from executor_service.runs.backup_runs import BackupRuns, BeginRequest, Started
from executor_service.runs.checks import check_lease, check_outcome, check_text
from executor_service.runs.plans import Plans
from executor_service.runs.promises import AWAITING_END
from shared.errors import FailedPrecondition, InvalidArgument, NotFound, Violations
from shared.hook_policy import DEFAULT_TIMEOUT_SECONDS, MAX_ID_LENGTH
from shared.stubs import executor_pb2, library_pb2


def _window_key(window_id: str) -> str:
    return f"window:{window_id}"


class Windows:
    def __init__(
        self,
        *,
        journal: Journal,
        library: LibraryPort,
        cache: ContentCache,
        runs: BackupRuns,
        clock: Clock,
    ) -> None:
        self.journal = journal
        self.library = library
        self.cache = cache
        self.runs = runs
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, window_id: str) -> asyncio.Lock:
        return self._locks.setdefault(window_id, asyncio.Lock())

    @staticmethod
    def _check_ids(window_id: str, holder_id: str) -> Violations:
        problems = Violations()
        check_text(problems, "window_id", window_id, limit=MAX_ID_LENGTH, required=True)
        check_text(problems, "holder_id", holder_id, limit=MAX_ID_LENGTH, required=True)
        return problems

    async def enter(self, window_id: str, holder_id: str, lease_seconds: int) -> Started:
        problems = self._check_ids(window_id, holder_id)
        lease = 0
        try:
            lease = check_lease("lease_seconds", lease_seconds)
        except InvalidArgument as error:
            problems.items.extend(error.violations)
        problems.raise_if_any()
        async with self._lock(window_id):
            run = await self.journal.open_run_for(_window_key(window_id))
            if run is None:
                return await self._open(window_id, holder_id, lease)
            if run.state != AWAITING_END:
                raise FailedPrecondition(
                    f"window {window_id} is opening or closing (its scripts are running); "
                    "enter again when they are done",
                    metadata={"window_id": window_id, "run_id": run.run_id},
                )
            await self._let_go_expired(run)
            await self.journal.set_holder(run.run_id, holder_id, self.clock.now() + lease)
            holders = await self.journal.holders(run.run_id)
            return await self._only_summary(
                run.run_id,
                executor_pb2.SummaryEvent(
                    verdict=executor_pb2.VERDICT_PROCEED,
                    run_state=AWAITING_END,
                    message=f"window already open; {len(holders)} holder(s)",
                ),
            )

    async def _open(self, window_id: str, holder_id: str, lease: int) -> Started:
        try:
            window = await self.library.get_window(window_id)
        except InvalidArgument as error:
            # The library judged its own field (``id``); to this caller it is window_id.
            raise InvalidArgument("window_id", error.violations[0].description) from None
        plans = Plans(
            pre=[await self._step(i, library_pb2.ON_ERROR_ABORT) for i in window.pre_script_ids],
            post=[
                await self._step(i, library_pb2.ON_ERROR_CONTINUE) for i in window.post_script_ids
            ],
        )

        async def keep_holder(run: RunRecord) -> None:
            await self.journal.set_holder(run.run_id, holder_id, run.lease_expires_at)

        return await self.runs.begin(
            BeginRequest(
                repository_id=_window_key(window_id), job_id=holder_id, lease_seconds=lease
            ),
            plans=plans,
            kind=KIND_WINDOW,
            trigger=library_pb2.EXECUTION_TRIGGER_WINDOW,
            on_open=keep_holder,
        )

    async def _step(
        self, script_id: str, on_error: library_pb2.OnError.ValueType
    ) -> library_pb2.PlanStep:
        script = await self.library.get_script(script_id)
        values = {p.name: p.default_value for p in script.parameters if p.has_default}
        return library_pb2.PlanStep(
            script_id=script.id,
            script_name=script.name,
            digest=self.cache.put(script.content.encode("utf-8")),
            timeout_seconds=script.default_timeout_seconds or DEFAULT_TIMEOUT_SECONDS,
            run_on=library_pb2.RUN_ON_ALWAYS,
            on_error=on_error,
            parameter_values=values,
            secret_parameter_names=[
                p.name
                for p in script.parameters
                if p.type == library_pb2.PARAMETER_TYPE_SECRET and p.name in values
            ],
        )

    async def leave(self, window_id: str, holder_id: str, outcome: int) -> Started:
        problems = self._check_ids(window_id, holder_id)
        try:
            check_outcome("outcome", outcome)
        except InvalidArgument as error:
            problems.items.extend(error.violations)
        problems.raise_if_any()
        async with self._lock(window_id):
            run = await self.journal.open_run_for(_window_key(window_id))
            if run is None:
                raise NotFound(f"window {window_id} is not open", metadata={"window_id": window_id})
            holders = await self.journal.holders(run.run_id)
            if holder_id not in holders:
                raise NotFound(
                    f"{holder_id!r} does not hold window {window_id} (never entered, or its "
                    "lease ran out)",
                    metadata={"window_id": window_id, "holder_id": holder_id},
                )
            if run.state != AWAITING_END:
                raise FailedPrecondition(
                    f"window {window_id} is opening or closing; leave when that is done",
                    metadata={"window_id": window_id, "run_id": run.run_id},
                )
            now = self.clock.now()
            remaining = [h for h, expiry in holders.items() if h != holder_id and expiry > now]
            if remaining:
                await self.journal.remove_holders(run.run_id, [holder_id])
                return await self._only_summary(
                    run.run_id,
                    executor_pb2.SummaryEvent(
                        run_state=AWAITING_END,
                        message=f"left; {len(remaining)} holder(s) remain, the window stays open",
                    ),
                )
            # The last live holder: close the window (its post scripts run).
            return await self.runs.end(run.run_id, outcome, {}, kinds=(KIND_WINDOW,))

    async def _let_go_expired(self, run: RunRecord) -> None:
        now = self.clock.now()
        holders = await self.journal.holders(run.run_id)
        expired = [h for h, expiry in holders.items() if expiry <= now]
        if expired:
            await self.journal.remove_holders(run.run_id, expired)

    @staticmethod
    async def _only_summary(run_id: str, summary: executor_pb2.SummaryEvent) -> Started:
        stream = EventStream(run_id)
        await stream.emit(summary=summary)
        await stream.close()
        return Started(stream)
