"""The schema exists only through Alembic: up from an empty database to head, down to
base, and every step reversible, on SQLite and on PostgreSQL. Checked by looking at the
database itself, not at Alembic's bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from library_service.store import migrate
from library_service.store.database import create_engine
from library_service.store.models import Base

# The tables and indexes the list, plan and activity-feed queries depend on.
EXPECTED_INDEXES = {
    "scripts": {"ix_scripts_category_name", "ix_scripts_is_template_name"},
    "assignments": {"ix_assignments_chain", "ix_assignments_script"},
    "executions": {
        "ix_executions_feed",
        "ix_executions_script_feed",
        "ix_executions_repository_feed",
        "ix_executions_job",
        "ix_executions_run",
    },
}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Same as tests/conftest.py's, but synchronous: an async fixture cannot call
    getfixturevalue on another async fixture (pytest-asyncio: 'Runner.run() cannot be
    called from a running event loop')."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


def _schema(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    return {
        "tables": tables,
        "indexes": {t: {i["name"] for i in inspector.get_indexes(t)} for t in tables},
    }


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _drift(connection: Connection) -> list[Any]:
    """Differences between the migrated schema and the models (tables the models know)."""

    def known(obj: Any, name: str, type_: str, reflected: bool, compare_to: Any) -> bool:
        # Tables created by migrations for other code (e.g. the maintenance tracker) but
        # not described by the library's models are not drift.
        return not (type_ == "table" and reflected and compare_to is None)

    context = MigrationContext.configure(
        connection, opts={"include_object": known, "compare_type": False}
    )
    return compare_metadata(context, Base.metadata)


async def _inspect(url: str, fn: Any) -> Any:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(fn)
    finally:
        await engine.dispose()


def _revisions() -> list[str]:
    """Every revision from the first to head, in order."""
    scripts = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    return [rev.revision for rev in reversed(list(scripts.walk_revisions("base", "heads")))]


async def test_upgrade_to_head_creates_every_table_and_index(database_url: str) -> None:
    before = await _inspect(database_url, _schema)
    assert not before["tables"] - {"alembic_version"}, "the database should start empty"

    await migrate.upgrade(database_url)

    after = await _inspect(database_url, _schema)
    missing = set(Base.metadata.tables) - after["tables"]
    assert not missing, f"tables not created by the migrations: {missing}"
    assert "script_run_tracker" in after["tables"]
    for table, indexes in EXPECTED_INDEXES.items():
        assert indexes <= after["indexes"][table], f"{table}: {after['indexes'][table]}"
    assert await _inspect(database_url, _current_revision) == _revisions()[-1]


async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    await migrate.upgrade(database_url)
    assert await _inspect(database_url, _drift) == []


async def test_downgrade_to_base_removes_everything(database_url: str) -> None:
    await migrate.upgrade(database_url)
    await migrate.downgrade(database_url, "base")

    schema = await _inspect(database_url, _schema)
    # Alembic keeps its own (now empty) version table; nothing of ours remains.
    assert schema["tables"] <= {"alembic_version"}
    assert await _inspect(database_url, _current_revision) is None


async def test_every_step_is_reversible(database_url: str) -> None:
    revisions = _revisions()
    assert revisions, "no migrations found"
    for revision in revisions:
        await migrate.upgrade(database_url, revision)
        tables_up = (await _inspect(database_url, _schema))["tables"]
        await migrate.downgrade(database_url, "-1")
        await migrate.upgrade(database_url, revision)
        assert (await _inspect(database_url, _schema))["tables"] == tables_up, revision
        assert await _inspect(database_url, _current_revision) == revision

    await migrate.upgrade(database_url)  # head is idempotent
    await migrate.downgrade(database_url, "base")
    assert (await _inspect(database_url, _schema))["tables"] <= {"alembic_version"}
