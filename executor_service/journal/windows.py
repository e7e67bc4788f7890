"""The ``window_holders`` table: who holds an open maintenance window (a run of kind
'window'), each with a lease; the run's lease is the latest of its holders'."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from executor_service.journal.connection import Connection


class WindowHolders(Connection):
    async def holders(self, run_id: str) -> dict[str, float]:
        """Holder id → lease expiry."""
        rows = await self._read(
            "SELECT holder_id, lease_expires_at FROM window_holders WHERE run_id = ?", (run_id,)
        )
        return {row["holder_id"]: row["lease_expires_at"] for row in rows}

    async def set_holder(self, run_id: str, holder_id: str, expires_at: float) -> None:
        """Add or renew a holder; the run's lease becomes the latest of its holders'."""

        def body(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO window_holders (run_id, holder_id, lease_expires_at) "
                "VALUES (?, ?, ?) ON CONFLICT (run_id, holder_id) "
                "DO UPDATE SET lease_expires_at = excluded.lease_expires_at",
                (run_id, holder_id, expires_at),
            )
            _lease_from_holders(db, run_id)

        await self._transact(body)

    async def remove_holders(self, run_id: str, holder_ids: Iterable[str]) -> None:
        """Let holders go (left, or their lease ran out); the run's lease follows the rest."""
        pairs = [(run_id, holder) for holder in holder_ids]

        def body(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM window_holders WHERE run_id = ? AND holder_id = ?", pairs)
            _lease_from_holders(db, run_id)

        await self._transact(body)


def _lease_from_holders(db: sqlite3.Connection, run_id: str) -> None:
    db.execute(
        "UPDATE runs SET lease_expires_at = (SELECT max(lease_expires_at) FROM "
        "window_holders WHERE run_id = ?) WHERE run_id = ? AND EXISTS "
        "(SELECT 1 FROM window_holders WHERE run_id = ?)",
        (run_id, run_id, run_id),
    )
