"""The ``steps`` table: one row per step *attempt*, noted when it starts and completed
when it ends; ``done`` marks an attempt whose result counts.

An attempt's row is written before its process starts, without a sync (`step_started`).
Its result is committed together with its execution record in the outbox (and, in a
chain, the next attempt's row), then synced in the background (`commit_step_result`):
nothing tells of a result before it is synced. An attempt cut short by a crash or a
shutdown is not done, so a resumed post chain runs that step again and never runs a
finished one twice.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3

from executor_service.journal.outbox import queue_record
from executor_service.journal.rows import StepRow, started_values, step_of
from executor_service.journal.syncing import CHECKPOINT_EVERY_RESULTS, Syncing
from shared.stubs import library_pb2

_INSERT_STARTED = (
    "INSERT INTO steps (execution_id, run_id, hook_type, step_index, script_name, "
    "started_at, record) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_FINISH = (
    "UPDATE steps SET status = ?, exit_code = ?, duration_ms = ?, ended_at = ?, "
    "done = ?, outputs = ?, record = ? WHERE execution_id = ?"
)


class Steps(Syncing):
    async def step_started(self, step: StepRow) -> None:
        """Note an attempt before its child process starts.

        Not synced: the row survives the executor being killed, which is what it is for
        — telling a restart which attempt was cut short, so it is recorded and, in a post
        chain, run again. After a power cut it may be missing, and the step is run again
        all the same (it has no finished result). What the promise rests on — the run,
        ``pre_started``, the state changes — is synced before anything depends on it, and
        the finished results with their records before anyone is told of them
        (`commit_step_result`, which also notes the next attempt of a chain).
        """
        values = started_values(step)
        await self._transact(lambda db: db.execute(_INSERT_STARTED, values), synced=False)

    async def step_finished(
        self,
        record: library_pb2.Execution,
        *,
        ended_at: float,
        done: bool,
        outputs: dict[str, str] | None = None,
    ) -> None:
        """Complete an attempt and queue its execution record, in one transaction, synced
        when this returns. ``done``: the result counts (False for an attempt cut short by
        a shutdown or a crash, which a resumed chain runs again)."""
        await (await self.commit_step_result(record, ended_at=ended_at, done=done, outputs=outputs))

    async def commit_step_result(
        self,
        record: library_pb2.Execution,
        *,
        ended_at: float,
        done: bool,
        outputs: dict[str, str] | None = None,
        then_started: StepRow | None = None,
    ) -> asyncio.Future[None]:
        """As `step_finished`, but returns once the transaction is committed, with a
        future that is done once it is synced. ``then_started``: the next attempt of the
        chain, noted in the same transaction (as `step_started` would): one commit per
        step of a chain instead of two.

        Committed, the result survives the executor being killed (it is in the OS's
        cache), so the chain may go on to its next step at once while the disk catches
        up. Until the future is done the result may still be lost to a power cut, and then
        the attempt counts as interrupted (its step runs again in a post chain), so
        nothing may tell of it before: the caller holds back the step's finished event,
        the recorder does not see its record, and `steps_of` waits.
        """
        serialized = record.SerializeToString()
        values = (
            record.status,
            record.exit_code,
            record.duration_ms,
            ended_at,
            int(done),
            json.dumps(outputs or {}, sort_keys=True),
            serialized,
            record.execution_id,
        )

        def body(db: sqlite3.Connection) -> None:
            db.execute(_FINISH, values)
            queue_record(db, record.execution_id, serialized, ended_at)
            if started is not None:
                db.execute(_INSERT_STARTED, started)

        started = None if then_started is None else started_values(then_started)
        execution_id = record.execution_id
        self._unsynced.add(execution_id)
        try:
            await self._transact(body, synced=False)
        except BaseException:
            self._unsynced.discard(execution_id)
            raise
        # Commits are appended to the write-ahead log in order, so this sync also covers
        # every commit before it, synced or not.
        self._since_checkpoint += 1
        checkpoint = self._since_checkpoint >= CHECKPOINT_EVERY_RESULTS
        if checkpoint:
            self._since_checkpoint = 0
        self._results_committed += 1
        sync = self._sync_soon(self._results_committed, checkpoint)
        self._syncs.add(sync)

        def synced(_: asyncio.Future[None]) -> None:
            self._syncs.discard(sync)
            if not sync.cancelled() and sync.exception() is None:
                # A failed fsync leaves the record unsent until a restart finds it.
                self._unsynced.discard(execution_id)

        sync.add_done_callback(synced)
        return sync

    async def steps_of(self, run_id: str) -> list[StepRow]:
        """The attempts of a run, for a client: only results that are synced."""
        await self.synced()
        rows = await self._read(
            "SELECT * FROM steps WHERE run_id = ? ORDER BY started_at, rowid", (run_id,)
        )
        return [step_of(row) for row in rows]

    async def done_steps(self, run_id: str, hook_type: int) -> dict[int, StepRow]:
        """The steps of a chain that have a result that counts, by index."""
        rows = await self._read(
            "SELECT * FROM steps WHERE run_id = ? AND hook_type = ? AND done ORDER BY started_at",
            (run_id, hook_type),
        )
        return {row["step_index"]: step_of(row) for row in rows}

    async def unfinished_steps(self) -> list[StepRow]:
        """Attempts that started and never ended: the executor stopped under them."""
        rows = await self._read("SELECT * FROM steps WHERE ended_at IS NULL")
        return [step_of(row) for row in rows]
