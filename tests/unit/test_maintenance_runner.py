"""The tracked-script runner in-process, on SQLite and PostgreSQL: the tracker rows, the
verdicts (verify, errors, the environment guard), --force, rollback, an edited script,
and the runs whose owner died (lock gone, or lease expired)."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from library_service.maintenance.framework import (
    BaseScript,
    VerifyFailed,
    locks,
    require_environment,
    runner,
    tracker,
)
from library_service.maintenance.framework.store import open_database
from library_service.store.database import Database
from tests.patience import eventually


class Recorder(BaseScript):
    """A script that counts what it is asked to do."""

    def __init__(
        self,
        name: str = "sample",
        *,
        verify_result: bool | str = True,
        fail: Exception | None = None,
        source: Path | None = None,
        guarded: bool = False,
    ) -> None:
        super().__init__(name)
        self.verify_result, self.fail, self.source, self.guarded = (
            verify_result,
            fail,
            source,
            guarded,
        )
        self.executions = 0
        self.rolled_back: list[dict] = []  # type: ignore[type-arg]

    def source_files(self) -> list[Path]:
        return [self.source] if self.source else super().source_files()

    async def execute(self, db: Database) -> None:
        if self.guarded:
            require_environment("development", "test")
        self.executions += 1
        self.log("did it")
        self.details = {"made": [1, 2]}
        if self.fail is not None:
            raise self.fail

    async def verify(self, db: Database) -> bool:
        if isinstance(self.verify_result, str):
            raise VerifyFailed(self.verify_result)
        return self.verify_result

    async def rollback(self, db: Database) -> None:
        assert self.target is not None
        self.rolled_back.append(self.target.details)


class NoRollback(BaseScript):
    async def execute(self, db: Database) -> None:
        self.log("done")


def quiet(_line: str) -> None:
    """Script output is checked in the rows, not on the terminal."""


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await open_database(database_url)
    try:
        yield database
    finally:
        await database.close()


async def rows(db: Database, name: str = "sample") -> list[tracker.TrackedRun]:
    return await tracker.recent(db.engine, name, 50)


async def test_a_successful_run_is_recorded_in_full(db: Database) -> None:
    script = Recorder()
    outcome = await runner.run(script, db, echo=quiet)
    assert (outcome.status, outcome.exit_code) == ("success", 0)
    [row] = await rows(db)
    assert (row.status, row.action, row.forced) == ("success", "run", False)
    assert row.finished_at is not None and row.finished_at >= row.started_at
    assert row.duration_ms is not None and row.duration_ms >= 0
    assert (row.host, row.pid) == (socket.gethostname(), os.getpid())
    assert row.checksum == "sha256:" + hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    assert (row.output, row.error, row.details) == ("did it", "", {"made": [1, 2]})
    assert row.lease_expires_at is None


async def test_a_success_is_not_repeated_without_force(db: Database) -> None:
    script = Recorder()
    await runner.run(script, db, echo=quiet)
    again = await runner.run(script, db, echo=quiet)
    assert (again.status, again.exit_code, script.executions) == ("skipped", 0, 1)
    assert "already ran successfully" in again.message and "--force" in again.message
    forced = await runner.run(script, db, force=True, echo=quiet)
    assert (forced.status, script.executions) == ("success", 2)
    assert [r.forced for r in await rows(db)] == [True, False]


async def test_a_repeatable_script_runs_every_time(db: Database) -> None:
    script = Recorder()
    script.run_once = False
    for _ in range(3):
        assert (await runner.run(script, db, echo=quiet)).status == "success"
    assert script.executions == 3


@pytest.mark.parametrize(
    ("verify_result", "why"),
    [(False, "verify() returned False"), ("only 3 of 5 rows", "only 3 of 5 rows")],
)
async def test_a_failing_verify_makes_the_run_failed(
    db: Database, verify_result: bool | str, why: str
) -> None:
    script = Recorder(verify_result=verify_result)
    outcome = await runner.run(script, db, echo=quiet)
    assert (outcome.status, outcome.exit_code) == ("failed", 1)
    [row] = await rows(db)
    assert row.status == "failed"
    assert row.error.startswith("verify failed") and why in row.error
    # Not a success: the next run executes again.
    script.verify_result = True
    assert (await runner.run(script, db, echo=quiet)).status == "success"
    assert script.executions == 2


async def test_an_error_in_execute_is_recorded_with_its_traceback(db: Database) -> None:
    outcome = await runner.run(Recorder(fail=RuntimeError("boom")), db, echo=quiet)
    assert outcome.status == "failed" and "RuntimeError: boom" in outcome.message
    [row] = await rows(db)
    assert row.status == "failed"
    assert row.error.startswith("RuntimeError: boom") and "Traceback" in row.error
    assert row.output == "did it"


async def test_the_environment_guard_refuses_outside_the_allowed_ones(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    script = Recorder(guarded=True)
    refused = await runner.run(script, db, echo=quiet)
    assert (refused.status, refused.exit_code, script.executions) == ("refused", 4, 0)
    [row] = await rows(db)
    assert row.status == "failed" and "refusing to run in environment 'production'" in row.error

    monkeypatch.setenv("ENVIRONMENT", "test")
    assert (await runner.run(script, db, echo=quiet)).status == "success"


async def test_rollback_undoes_the_last_success_with_its_details(db: Database) -> None:
    script = Recorder()
    first = await runner.run(script, db, echo=quiet)
    undone = await runner.rollback(script, db, echo=quiet)
    assert (undone.status, undone.exit_code) == ("rolled_back", 0)
    assert script.rolled_back == [{"made": [1, 2]}]
    by_id = {r.id: r for r in await rows(db)}
    assert by_id[first.run_id].status == "rolled_back"
    assert (by_id[undone.run_id].action, by_id[undone.run_id].status) == ("rollback", "success")

    nothing = await runner.rollback(script, db, echo=quiet)
    assert nothing.status == "failed" and "nothing to roll back" in nothing.message
    # Rolled back is not done: a plain run executes again.
    assert (await runner.run(script, db, echo=quiet)).status == "success"
    assert script.executions == 2


async def test_a_script_without_rollback_says_so_and_records_nothing(db: Database) -> None:
    script = NoRollback("plain")
    await runner.run(script, db, echo=quiet)
    outcome = await runner.rollback(script, db, echo=quiet)
    assert outcome.status == "failed" and "has no rollback" in outcome.message
    assert [r.action for r in await rows(db, "plain")] == ["run"]


async def test_an_edited_script_is_flagged(db: Database, tmp_path: Path) -> None:
    source = tmp_path / "script.py"
    source.write_text("version 1\n")
    script = Recorder(source=source)
    await runner.run(script, db, echo=quiet)
    assert not (await runner.status(script, db)).edited

    source.write_text("version 2\n")
    status = await runner.status(script, db)
    assert status.edited and "EDITED" in status.message
    skipped = await runner.run(script, db, echo=quiet)
    assert skipped.status == "skipped" and skipped.edited and "edited" in skipped.message

    # Scripts whose inputs ship with the package run again by themselves.
    script.rerun_when_changed = True
    assert (await runner.run(script, db, echo=quiet)).status == "success"
    assert not (await runner.status(script, db)).edited


async def test_a_run_left_pending_by_a_dead_process_is_marked_by_the_next_run(
    db: Database,
) -> None:
    # A pending row without a lock holder: its process died (the kernel or the server
    # released its lock).
    dead = await tracker.start(
        db.engine, "sample", action="run", forced=False, checksum="", lease=600
    )
    script = Recorder()
    assert (await runner.run(script, db, echo=quiet)).status == "success"
    by_id = {r.id: r for r in await rows(db)}
    assert by_id[dead.id].status == "failed"
    assert by_id[dead.id].error.startswith("interrupted: its process is gone")


async def test_a_run_whose_lease_expired_is_marked_by_status_even_under_a_held_lock(
    db: Database,
) -> None:
    # The lock is still held (a host vanished and the server has not noticed its session
    # yet), but the heartbeat stopped: the lease says the run is dead.
    holder = locks.lock_for(db.url, "sample")
    assert await holder.try_acquire()
    try:
        stale = await tracker.start(
            db.engine, "sample", action="run", forced=False, checksum="", lease=-1
        )
        status = await runner.status(Recorder(), db)
        assert "lease expired" in status.message
        [row] = await rows(db)
        assert (row.id, row.status) == (stale.id, "failed")
        assert row.error.startswith("interrupted: its lease expired")
    finally:
        await holder.release()


async def test_a_live_run_makes_another_caller_busy(db: Database) -> None:
    holder = locks.lock_for(db.url, "sample")
    assert await holder.try_acquire()
    try:
        live = await tracker.start(
            db.engine, "sample", action="run", forced=False, checksum="", lease=600
        )
        script = Recorder()
        outcome = await runner.run(script, db, echo=quiet)
        assert (outcome.status, outcome.exit_code, script.executions) == ("busy", 3, 0)
        assert f"already running: run {live.id}" in outcome.message
        assert f"pid {os.getpid()}" in outcome.message
        status = await runner.status(script, db)
        assert f"running (run {live.id}" in status.message
        assert (await rows(db))[0].status == "pending"
    finally:
        await holder.release()


async def test_the_heartbeat_renews_the_lease_while_the_run_lives(db: Database) -> None:
    class Slow(Recorder):
        heartbeat_seconds = 0.05

        async def execute(self, db: Database) -> None:
            # Lives until a beat is on record, however long the machine takes to get there.
            await eventually(lambda: beaten(db), "a heartbeat while the run lives")

    async def beaten(db: Database) -> bool:
        [row] = await rows(db)
        return row.heartbeat_at is not None and row.heartbeat_at > row.started_at

    await runner.run(Slow(), db, echo=quiet)
    [row] = await rows(db)
    assert row.heartbeat_at is not None and row.heartbeat_at > row.started_at
