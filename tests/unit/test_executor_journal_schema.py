"""The journal's schema version: a new journal has the current one, an unversioned
journal (the layout before versions) is upgraded in place keeping every row, a journal
from a newer executor is refused, and an upgrade is all or nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from executor_service.journal import SCHEMA_VERSION, Journal, JournalTooNew
from executor_service.journal import schema as schema_module
from shared.stubs import executor_pb2, library_pb2
from tests.fixtures import make_journal_v0 as v0

TABLES = ("meta", "runs", "steps", "outbox", "window_holders")


def _user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def _contents(path: Path) -> dict[str, object]:
    """Every row of every table, and the names of the tables and indexes."""
    db = sqlite3.connect(path)
    try:
        found: dict[str, object] = {
            table: sorted(db.execute(f"SELECT * FROM {table}").fetchall()) for table in TABLES
        }
        found["schema"] = sorted(
            db.execute(
                "SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            ).fetchall()
        )
        return found
    finally:
        db.close()


def _v0_journal(state_dir: Path) -> Path:
    """The fixture (the old code's journal, one owed post chain), with a row added by
    hand to the two tables it leaves empty, so the upgrade has every table to keep."""
    path = v0.load_fixture(state_dir, "/tmp/marks")
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute(
                "INSERT INTO runs (run_id, kind, repository_id, trigger, state, "
                "lease_seconds, lease_expires_at, created_at) "
                "VALUES ('win-1', 'window', 'window:w', 0, ?, 60, 1700000060.0, 1700000000.0)",
                (executor_pb2.RUN_STATE_AWAITING_END,),
            )
            db.execute("INSERT INTO window_holders VALUES ('win-1', 'holder-a', 1700000060.0)")
            db.execute(
                "INSERT INTO outbox (execution_id, record, created_at, delivered, attempts) "
                "VALUES ('old-record', X'0A036F6C64', 1690000000.0, 1, 1)"
            )
    finally:
        db.close()
    assert _user_version(path) == 0
    return path


async def test_a_new_journal_has_the_current_version_and_every_table(tmp_path: Path) -> None:
    await (await Journal.open(tmp_path)).close()
    path = tmp_path / "journal.db"
    assert _user_version(path) == SCHEMA_VERSION
    assert all(_contents(path)[table] == [] for table in TABLES)


async def test_an_unversioned_journal_is_upgraded_keeping_every_row(tmp_path: Path) -> None:
    path = _v0_journal(tmp_path)
    before = _contents(path)
    assert before["runs"] and before["steps"] and before["meta"]

    journal = await Journal.open(tmp_path)
    try:
        # What the old code wrote reads back whole through today's code.
        run = await journal.get_run(v0.RUN_ID)
        assert run is not None and run.pre_started and run.is_open
        assert run.variables == {"MARKS": "/tmp/marks"}
        assert [(s.script_name, s.digest, s.run_on) for s in run.post_plan] == [
            (v0.POST_NAME, v0.POST_DIGEST, library_pb2.RUN_ON_ALWAYS)
        ]
        (step,) = await journal.unfinished_steps()
        assert step.execution_id == v0.PRE_EXECUTION_ID
        assert await journal.holders("win-1") == {"holder-a": 1700000060.0}
        assert await journal.executor_id() == dict(before["meta"])["executor_id"]
    finally:
        await journal.close()

    assert _user_version(path) == SCHEMA_VERSION
    after = _contents(path)
    # Version 2 added a table, and two columns at the end of runs (no plan source known);
    # version 3 an index.
    assert after["schema"] == sorted(
        [*before["schema"], ("table", "kept_plans", "kept_plans"), ("index", "runs_ended", "runs")]
    )
    assert after["runs"] == [(*row, 0, None) for row in before["runs"]]
    for table in TABLES:
        if table != "runs":
            assert after[table] == before[table]


async def test_a_journal_from_a_newer_executor_is_refused_untouched(tmp_path: Path) -> None:
    path = _v0_journal(tmp_path)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    before = _contents(path)

    with pytest.raises(JournalTooNew, match=f"schema version {SCHEMA_VERSION + 1}"):
        await Journal.open(tmp_path)
    assert _user_version(path) == SCHEMA_VERSION + 1
    assert _contents(path) == before
    # The refusal let the state dir go: it is refused again, not "in use".
    with pytest.raises(JournalTooNew):
        await Journal.open(tmp_path)


def _add_column(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT ''")


async def test_a_next_version_is_one_function_in_the_list(tmp_path: Path, monkeypatch) -> None:
    """Both steps run, from version 0, in the order of the list."""
    _v0_journal(tmp_path)
    monkeypatch.setattr(schema_module, "MIGRATIONS", [*schema_module.MIGRATIONS, _add_column])
    monkeypatch.setattr(schema_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    await (await Journal.open(tmp_path)).close()
    path = tmp_path / "journal.db"
    assert _user_version(path) == SCHEMA_VERSION + 1
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT note FROM runs WHERE run_id = ?", (v0.RUN_ID,)).fetchone() == (
            "",
        )
    finally:
        db.close()


async def test_a_failed_upgrade_changes_nothing(tmp_path: Path, monkeypatch) -> None:
    """One transaction: a migration that fails after another one ran leaves the journal
    as it was, version included, and the next start tries again."""
    path = _v0_journal(tmp_path)
    before = _contents(path)

    def half_done(db: sqlite3.Connection) -> None:
        _add_column(db)
        raise RuntimeError("migration failed")

    monkeypatch.setattr(schema_module, "MIGRATIONS", [*schema_module.MIGRATIONS, half_done])
    monkeypatch.setattr(schema_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(RuntimeError, match="migration failed"):
        await Journal.open(tmp_path)
    assert _user_version(path) == 0
    assert _contents(path) == before

    monkeypatch.undo()
    await (await Journal.open(tmp_path)).close()
    assert _user_version(path) == SCHEMA_VERSION
