"""prune_executions against real databases: retention by count per script, by age, both
(the newest N always stay), a dry run that removes nothing, and a job that runs every
time it is asked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from library_service.maintenance.framework import runner
from library_service.maintenance.framework.store import open_database
from library_service.maintenance.prune_executions import PruneExecutions
from library_service.store import models
from library_service.store.database import Database

# (script_id, script_name, days ago)
HISTORY = [
    ("a", "alpha", 1),
    ("a", "alpha", 10),
    ("a", "alpha", 20),
    ("a", "alpha", 40),
    ("a", "alpha-renamed", 100),  # the same script under its old name: grouped by id
    ("b", "beta", 2),
    ("b", "beta", 50),
    ("", "inline-pre", 3),
    ("", "inline-pre", 200),  # no script id: grouped by name
]


def quiet(_line: str) -> None:
    pass


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await open_database(database_url)
    now = datetime.now(UTC)
    async with database.transaction() as session:
        for index, (script_id, name, days) in enumerate(HISTORY):
            session.add(
                models.Execution(
                    execution_id=f"e{index}",
                    script_id=script_id,
                    script_name=name,
                    status=1,
                    start_time=now - timedelta(days=days, minutes=index),
                    recorded_at=now,
                )
            )
    try:
        yield database
    finally:
        await database.close()


async def remaining(db: Database) -> list[tuple[str, int]]:
    now = datetime.now(UTC)
    async with db.transaction() as session:
        rows = await session.scalars(select(models.Execution))
        ages = []
        for row in rows:
            start = row.start_time if row.start_time.tzinfo else row.start_time.replace(tzinfo=UTC)
            ages.append((row.script_id or row.script_name, round((now - start).days)))
        return sorted(ages)


async def prune(db: Database, **options: object) -> runner.Outcome:
    outcome = await runner.run(PruneExecutions(**options), db, echo=quiet)  # type: ignore[arg-type]
    assert outcome.status == "success", outcome.message
    return outcome


async def test_keep_last_per_script(db: Database) -> None:
    await prune(db, keep_last=2)
    assert await remaining(db) == [
        ("a", 1),
        ("a", 10),
        ("b", 2),
        ("b", 50),
        ("inline-pre", 3),
        ("inline-pre", 200),
    ]


async def test_older_than_days(db: Database) -> None:
    await prune(db, older_than_days=30)
    assert await remaining(db) == [("a", 1), ("a", 10), ("a", 20), ("b", 2), ("inline-pre", 3)]


async def test_both_keep_the_newest_whatever_their_age(db: Database) -> None:
    await prune(db, keep_last=3, older_than_days=15)
    assert await remaining(db) == [
        ("a", 1),
        ("a", 10),
        ("a", 20),
        ("b", 2),
        ("b", 50),
        ("inline-pre", 3),
        ("inline-pre", 200),
    ]


async def test_a_dry_run_removes_nothing(db: Database) -> None:
    before = await remaining(db)
    script = PruneExecutions(older_than_days=30, dry_run=True)
    outcome = await runner.run(script, db, echo=quiet)
    assert outcome.status == "success"
    assert "would remove 4 execution(s)" in script.output
    assert await remaining(db) == before


async def test_it_runs_every_time_and_small_batches_get_everything(db: Database) -> None:
    script = PruneExecutions(keep_last=1)
    script.options.batch_size = 1
    for _ in range(2):
        assert (await runner.run(script, db, echo=quiet)).status == "success"
    assert await remaining(db) == [("a", 1), ("b", 2), ("inline-pre", 3)]
    assert "removed 0 execution(s)" in script.output
