"""The ``meta`` table: small facts about this executor, by key."""

from __future__ import annotations

import sqlite3
import uuid

from executor_service.journal.connection import Connection


class Meta(Connection):
    async def executor_id(self) -> str:
        """A stable id for this executor (its state dir), made on first use."""

        def body(db: sqlite3.Connection) -> str:
            row = db.execute("SELECT value FROM meta WHERE key = 'executor_id'").fetchone()
            if row is not None:
                return str(row["value"])
            made = f"executor-{uuid.uuid4().hex[:12]}"
            db.execute("INSERT INTO meta (key, value) VALUES ('executor_id', ?)", (made,))
            return made

        return await self._transact(body)
