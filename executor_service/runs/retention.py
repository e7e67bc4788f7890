"""Keeping the journal bounded: ended runs go once their records are delivered and the
retention has passed (journal/retention.py says what is deleted and what never is).

A background task prunes every PRUNE_INTERVAL seconds (and once at start), in batches,
yielding to the event loop between them, then gives the freed pages back. With
``HOOKSHELF_EXECUTOR_JOURNAL_RETENTION_SECONDS=0`` a run goes at the first pass after its
records are delivered.
"""

from __future__ import annotations

import asyncio

import structlog

from executor_service.clock import Clock
from executor_service.journal import Journal

log = structlog.get_logger("hookshelf.executor.retention")

DEFAULT_RETENTION_SECONDS = 7 * 86_400
PRUNE_INTERVAL = 60.0


class JournalRetention:
    def __init__(
        self,
        journal: Journal,
        clock: Clock,
        *,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
    ) -> None:
        self.journal = journal
        self.clock = clock
        self.retention_seconds = retention_seconds

    async def prune(self) -> int:
        """Delete every run past the retention now; returns how many went."""
        ended_before = self.clock.now() - self.retention_seconds
        pruned = 0
        while True:
            batch = await self.journal.prune_ended_runs(ended_before)
            pruned += batch
            if batch == 0:
                break
            await asyncio.sleep(0)  # whatever else waits for the journal goes first
        if pruned:
            await self.journal.give_back_space()
            log.info("journal.pruned", runs=pruned, retention_seconds=self.retention_seconds)
        return pruned

    async def watch(self, interval: float = PRUNE_INTERVAL) -> None:
        """Prune now and every ``interval`` seconds, until cancelled."""
        while True:
            try:
                await self.prune()
            except Exception:  # a failed pass is logged; the next one tries again
                log.exception("journal.prune_failed")
            await asyncio.sleep(interval)
