"""Retention: what the journal forgets, so that it stays bounded over years of backups.

An ended run whose records are all delivered is history the library now holds; the
journal keeps it for ``HOOKSHELF_EXECUTOR_JOURNAL_RETENTION_SECONDS`` after it ended (so
GetBackupRun and a re-sent EndBackup still find it), then deletes it with its steps and
their delivered outbox rows. Never deleted: open runs (their post chains may be owed),
runs with a record not yet delivered, records the library refused (``delivered = 2``: kept
for a human, a few hundred bytes each), kept plans (kept_plans.py) and meta.

Deletion goes in small batches, each a transaction of its own on the journal's thread
(the event loop never waits for it) and unsynced (a batch lost to a power cut is deleted
again). The freed pages go back to the file system (``incremental_vacuum``; the journal is
``auto_vacuum=INCREMENTAL``, connection.py), so the file shrinks rather than only stops
growing.
"""

from __future__ import annotations

import sqlite3

from executor_service.journal.connection import Connection
from shared.stubs import executor_pb2

# Runs per transaction: a backup run has a few to a hundred steps; a batch holds the
# connection for a few milliseconds at most.
BATCH_RUNS = 50

_PRUNABLE = f"""
SELECT run_id FROM runs
WHERE state = {executor_pb2.RUN_STATE_ENDED} AND ended_at <= ?
  AND NOT EXISTS (
    SELECT 1 FROM steps JOIN outbox ON outbox.execution_id = steps.execution_id
    WHERE steps.run_id = runs.run_id AND outbox.delivered = 0
  )
ORDER BY ended_at
LIMIT ?
"""


class Retention(Connection):
    async def prune_ended_runs(self, ended_before: float, *, batch: int = BATCH_RUNS) -> int:
        """Delete one batch of runs that ended at or before ``ended_before`` with every
        record delivered; returns how many runs went (fewer than ``batch``: none left)."""

        def body(db: sqlite3.Connection) -> int:
            run_ids = [row[0] for row in db.execute(_PRUNABLE, (ended_before, batch))]
            if not run_ids:
                return 0
            marks = ", ".join("?" * len(run_ids))
            db.execute(
                f"DELETE FROM outbox WHERE delivered = 1 AND execution_id IN "
                f"(SELECT execution_id FROM steps WHERE run_id IN ({marks}))",
                run_ids,
            )
            for table in ("steps", "window_holders", "runs"):
                db.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", run_ids)
            return len(run_ids)

        return await self._transact(body, synced=False, background=True)

    async def give_back_space(self) -> None:
        """Return the pages retention freed to the file system."""

        def vacuum() -> None:
            # As a script: stepped as a statement, the pragma frees one page per step and
            # Python's sqlite3 stops after the first.
            self._db.executescript("PRAGMA incremental_vacuum;")
            # The file shrinks when the log is copied back into it.
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

        await self._call(vacuum)
