"""The ``outbox`` table: execution records for the library, queued in the same
transaction as the step result they tell of and delivered later (library/recorder.py),
idempotent by execution id. ``delivered``: 0 pending, 1 delivered, 2 refused by the
library for good (kept, with ``last_error``, for a human)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from executor_service.journal.syncing import Syncing
from shared.stubs import library_pb2

_QUEUE = "INSERT OR IGNORE INTO outbox (execution_id, record, created_at) VALUES (?, ?, ?)"


def queue_record(db: sqlite3.Connection, execution_id: str, serialized: bytes, now: float) -> None:
    """Inside a transaction: queue a record (once per execution id)."""
    db.execute(_QUEUE, (execution_id, serialized, now))


class Outbox(Syncing):
    async def pending_records(self, limit: int) -> list[library_pb2.Execution]:
        """Records to deliver, oldest first; not those whose step result is not yet synced
        (the library must never hold a record the journal could lose)."""
        unsynced = set(self._unsynced)
        rows = await self._read(
            "SELECT execution_id, record FROM outbox WHERE delivered = 0 "
            "ORDER BY created_at LIMIT ?",
            (limit + len(unsynced),),
        )
        return [
            library_pb2.Execution.FromString(row["record"])
            for row in rows
            if row["execution_id"] not in unsynced
        ][:limit]

    async def count_pending(self) -> int:
        rows = await self._read("SELECT count(*) AS n FROM outbox WHERE delivered = 0")
        return int(rows[0]["n"]) if rows else 0

    async def mark_delivered(self, execution_ids: Iterable[str]) -> None:
        """Not synced: a mark lost to a power cut only means the record is sent again, and
        the library ignores an execution id it already has (counted once)."""
        ids = [(i,) for i in execution_ids]
        await self._transact(
            lambda db: db.executemany(
                "UPDATE outbox SET delivered = 1, attempts = attempts + 1, last_error = '' "
                "WHERE execution_id = ?",
                ids,
            ),
            synced=False,
        )

    async def mark_rejected(self, execution_id: str, error: str) -> None:
        """The library refuses this record for good: stop sending it, keep it for a human."""
        await self._transact(
            lambda db: db.execute(
                "UPDATE outbox SET delivered = 2, attempts = attempts + 1, last_error = ? "
                "WHERE execution_id = ?",
                (error[:1000], execution_id),
            )
        )
