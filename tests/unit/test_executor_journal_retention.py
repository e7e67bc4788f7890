"""Journal retention: which runs go and which stay, and the file gives the space back.

Goes: an ended run past the retention whose records are all delivered, with its steps and
their delivered outbox rows. Stays: open runs, runs within the retention, runs with a
record not yet delivered, records the library refused, kept plans.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from executor_service.clock import Clock
from executor_service.journal import Journal, KeptPlan, RunRecord
from executor_service.journal.outbox import queue_record
from executor_service.runs.retention import JournalRetention
from shared.stubs import executor_pb2, library_pb2

NOW = 1_800_000_000.0
DAY = 86_400.0
ENDED = executor_pb2.RUN_STATE_ENDED


class FixedClock(Clock):
    def now(self) -> float:
        return NOW


async def _run(
    journal: Journal, run_id: str, *, ended_at: float | None, delivered: tuple[int, ...] = (1,)
) -> None:
    """A run (ended at ``ended_at``, or open) with one step per ``delivered`` flag, each
    with its outbox row in that delivery state."""
    await journal.create_run(
        RunRecord(run_id=run_id, repository_id=run_id, created_at=NOW - DAY * 30)
    )
    if ended_at is not None:
        await journal.update_run(run_id, state=ENDED, ended_at=ended_at)

    def body(db: sqlite3.Connection) -> None:
        for index, flag in enumerate(delivered):
            execution_id = f"{run_id}-{index}"
            record = library_pb2.Execution(
                execution_id=execution_id, stdout=library_pb2.CapturedOutput(head=b"x" * 2000)
            )
            db.execute(
                "INSERT INTO steps (execution_id, run_id, hook_type, step_index, script_name, "
                "started_at, ended_at, done, record) VALUES (?, ?, 1, ?, 's', ?, ?, 1, ?)",
                (
                    execution_id,
                    run_id,
                    index,
                    NOW - DAY * 30,
                    NOW - DAY * 30,
                    record.SerializeToString(),
                ),
            )
            queue_record(db, execution_id, record.SerializeToString(), NOW - DAY * 30)
            db.execute(
                "UPDATE outbox SET delivered = ? WHERE execution_id = ?", (flag, execution_id)
            )

    await journal._transact(body)


def _count(journal: Journal, table: str) -> int:
    return journal._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


async def test_only_ended_delivered_runs_past_the_retention_go(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path)
    try:
        await _run(journal, "old-delivered", ended_at=NOW - 8 * DAY, delivered=(1, 1, 1))
        await _run(journal, "old-undelivered", ended_at=NOW - 8 * DAY, delivered=(1, 0))
        await _run(journal, "old-rejected", ended_at=NOW - 8 * DAY, delivered=(1, 2))
        await _run(journal, "recent", ended_at=NOW - 6 * DAY)
        await _run(journal, "open", ended_at=None)
        kept = KeptPlan("old-delivered", library_pb2.HOOK_TYPE_PRE_BACKUP, [], NOW - 30 * DAY)
        await journal.create_run(RunRecord(run_id="with-plan", repository_id="p"), keep=[kept])

        pruned = await JournalRetention(
            journal, FixedClock(), retention_seconds=int(7 * DAY)
        ).prune()

        assert pruned == 2
        assert await journal.get_run("old-delivered") is None
        assert await journal.get_run("old-rejected") is None
        for stays in ("old-undelivered", "recent", "open", "with-plan"):
            assert await journal.get_run(stays) is not None, stays
        steps = {row[0] for row in journal._db.execute("SELECT run_id FROM steps")}
        assert steps == {"old-undelivered", "recent", "open"}
        outbox = sorted(
            tuple(row) for row in journal._db.execute("SELECT execution_id, delivered FROM outbox")
        )
        # The refused record stays for a human though its run went; delivered ones went
        # with their runs, pending ones stay.
        assert ("old-rejected-1", 2) in outbox and ("old-rejected-0", 1) not in outbox
        assert ("old-undelivered-1", 0) in outbox and ("old-undelivered-0", 1) in outbox
        assert not any(execution_id.startswith("old-delivered") for execution_id, _ in outbox)
        assert await journal.kept_plans("old-delivered")
    finally:
        await journal.close()


async def test_retention_zero_prunes_as_soon_as_delivered(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path)
    try:
        await _run(journal, "just-ended", ended_at=NOW)
        await _run(journal, "just-ended-pending", ended_at=NOW, delivered=(0,))
        assert await JournalRetention(journal, FixedClock(), retention_seconds=0).prune() == 1
        assert await journal.get_run("just-ended-pending") is not None
    finally:
        await journal.close()


async def test_pruning_many_runs_gives_the_space_back(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path)
    try:
        for number in range(400):
            await _run(journal, f"run-{number}", ended_at=NOW - 8 * DAY, delivered=(1, 1, 1, 1))
        journal._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        full = (tmp_path / "journal.db").stat().st_size

        assert await JournalRetention(journal, FixedClock()).prune() == 400

        assert _count(journal, "runs") == _count(journal, "steps") == _count(journal, "outbox") == 0
        assert journal._db.execute("PRAGMA freelist_count").fetchone()[0] == 0
        emptied = (tmp_path / "journal.db").stat().st_size
        assert emptied < full / 4, (full, emptied)
    finally:
        await journal.close()
