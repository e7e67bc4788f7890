"""Delivering execution records to the library: none lost, none twice.

Records enter the journal's outbox in the same transaction as their step's result
(chains/chain_runner.py). This background task sends them in batches with
RecordExecutions (a deadline per call), marks them delivered, and while the library is
away backs off (doubling, up to a cap) and keeps them. The back-off ends early when the
channel to the library connects again (`LibraryPort.reconnected`): records reach a
library that is back within about a second of its return, not at the end of a back-off
of up to MAX_BACKOFF. The library stores by execution id and ignores ids it already
has, so a batch that was stored but whose answer was lost is simply sent again: counted
once. A batch the library rejects as invalid is retried record by record and only the
bad records are set aside (``delivered = 2`` with the error) so one bad record cannot
block the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import structlog

from executor_service.journal import Journal
from executor_service.library.port import LibraryPort
from shared.errors import InvalidArgument, Unavailable
from shared.message_limits import MAX_REQUEST_BYTES
from shared.stubs import library_pb2

log = structlog.get_logger("hookshelf.executor.recorder")

BATCH_SIZE = 100
# A batch stays well inside the largest request the library accepts: a record carries up
# to 256 KiB of output, so 100 of them could not go in one call.
BATCH_BYTES = MAX_REQUEST_BYTES // 2
# After a wake-up, wait this long for more records: a chain of quick steps then costs
# the library one call per batch instead of one per step. A chain that ends (`flush`)
# cuts the wait short: its last records need not wait for more that are not coming.
GATHER_SECONDS = 0.2
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0


class Recorder:
    """Sends the outbox to the library until stopped."""

    def __init__(
        self,
        journal: Journal,
        library: LibraryPort,
        *,
        batch_size: int = BATCH_SIZE,
        batch_bytes: int = BATCH_BYTES,
        first_backoff: float = FIRST_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        self.journal = journal
        self.library = library
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self._wake = asyncio.Event()
        self._flush = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        # True while backing off from a library that cannot be reached.
        self.waiting_for_library = False

    def wake(self) -> None:
        """New records are waiting."""
        self._wake.set()

    def flush(self) -> None:
        """A chain ended: send what is waiting now rather than after the gathering delay."""
        self._flush.set()
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="recorder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def drained(self, timeout: float) -> bool:
        """Wait until the outbox is empty (or the timeout); True when it is."""
        try:
            async with asyncio.timeout(timeout):
                while await self.journal.count_pending():
                    self._idle.clear()
                    self.wake()
                    await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        backoff = self.first_backoff
        while True:
            self._wake.clear()
            try:
                sent = await self.deliver_once()
            except Unavailable as error:
                log.warning(
                    "recorder.library_unavailable", error=error.message, retry_in=round(backoff, 2)
                )
                self.waiting_for_library = True
                try:
                    await self._sleep(backoff * random.uniform(0.8, 1.0))
                finally:
                    self.waiting_for_library = False
                backoff = min(self.max_backoff, backoff * 2)
                continue
            except Exception:  # keep delivering whatever happened once
                log.exception("recorder.failed")
                await self._sleep(backoff)
                backoff = min(self.max_backoff, backoff * 2)
                continue
            backoff = self.first_backoff
            if sent < self.batch_size:
                self._idle.set()
                await self._wake.wait()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(GATHER_SECONDS):
                        await self._flush.wait()
            self._flush.clear()

    async def _sleep(self, seconds: float) -> None:
        """Back off, until the library's channel connects again at the latest. New
        records do not cut it short: they would only hammer a library that is away."""
        self._idle.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                try:
                    await self.library.reconnected()
                except Exception:  # cannot watch the channel: the back-off alone, then
                    log.warning("recorder.cannot_watch_library", exc_info=True)
                    await asyncio.sleep(seconds)
                    return
                log.info("recorder.library_reachable_again")

    async def deliver_once(self) -> int:
        """Send one batch (up to batch_size records and batch_bytes bytes, at least one
        record); returns how many records it held, batch_size when more are waiting."""
        pending = await self.journal.pending_records(self.batch_size)
        batch = _within(pending, self.batch_bytes)
        if not batch:
            return 0
        try:
            response = await self.library.record_executions(batch)
        except InvalidArgument:
            await self._deliver_singly(batch)
            return len(batch)
        await self.journal.mark_delivered(r.execution_id for r in batch)
        self.delivered += len(batch)
        log.info(
            "recorder.delivered",
            recorded=response.recorded_count,
            duplicates=response.duplicate_count,
        )
        # Cut short by its bytes: say "full" so the next batch goes at once.
        return self.batch_size if len(batch) < len(pending) else len(batch)

    async def _deliver_singly(self, batch: list) -> None:
        for record in batch:
            try:
                await self.library.record_executions([record])
            except InvalidArgument as error:
                log.error(
                    "recorder.record_rejected",
                    execution_id=record.execution_id,
                    error=error.message,
                )
                await self.journal.mark_rejected(record.execution_id, error.message)
                continue
            await self.journal.mark_delivered([record.execution_id])
            self.delivered += 1


def _within(records: list[library_pb2.Execution], limit: int) -> list[library_pb2.Execution]:
    """The first records whose sizes add up to at most ``limit`` (always the first one:
    a single record is far smaller than any request limit)."""
    total = 0
    for count, record in enumerate(records):
        total += record.ByteSize()
        if total > limit and count > 0:
            return records[:count]
    return records
