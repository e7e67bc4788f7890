"""The schema exists only through Alembic: up from an empty database to head, down to
base, and every step reversible, on SQLite and on PostgreSQL. Checked by looking at the
database itself, not at Alembic's bookkeeping.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

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


POSTGRES_ONLY_INDEXES = {"ix_scripts_name_lower_trgm", "ix_scripts_description_lower_trgm"}
# Stored lower-case copies that only ListScripts' query names (migration 0004).
POSTGRES_ONLY_COLUMNS = {"name_lower", "description_lower"}


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
        # Objects that exist only in the database are left out: tables that migrations
        # create for other code (the maintenance tracker) and backend-specific indexes
        # that the models cannot express portably (PostgreSQL trigram indexes and the
        # lowered search columns). What the models declare must exist, exactly as declared.
        if reflected and compare_to is None and type_ == "column":
            return name not in POSTGRES_ONLY_COLUMNS
        return not (reflected and compare_to is None and type_ in {"table", "index"})

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
    if database_url.startswith("postgresql"):
        # ListScripts' free-text query ('%text%') needs trigram indexes to stay fast.
        assert POSTGRES_ONLY_INDEXES <= after["indexes"]["scripts"]
        assert (
            not {"ix_scripts_name_trgm", "ix_scripts_description_trgm"}
            & after["indexes"]["scripts"]
        ), "the indexes on the unlowered columns are replaced"
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


async def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    """Library replicas behind one Service start at the same moment on a fresh database:
    each runs the upgrade, and every one of them must succeed."""
    script = (
        "import sys; from library_service.store.migrate import upgrade_sync; "
        "upgrade_sync(sys.argv[1])"
    )
    replicas = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            postgres_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    results = [await replica.communicate() for replica in replicas]

    failures = [err.decode()[-600:] for (_, err), r in zip(results, replicas) if r.returncode]
    assert failures == []
    assert await _inspect(postgres_url, _current_revision) == _revisions()[-1]
    assert await _inspect(postgres_url, _drift) == []
