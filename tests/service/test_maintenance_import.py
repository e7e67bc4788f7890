"""import_inline_scripts against real databases: legacy inline hooks become shared
library scripts and assignments; a failure leaves nothing behind; rollback removes
exactly what the run created, and refuses when that would remove more."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from library_service.context import LibraryContext
from library_service.domain import scripts
from library_service.maintenance import import_inline_scripts as module
from library_service.maintenance.framework import runner
from library_service.maintenance.import_inline_scripts import ImportInlineScripts
from library_service.store import models
from library_service.store.database import Database
from shared.stubs import library_pb2

PRE, POST = library_pb2.HOOK_TYPE_PRE_BACKUP, library_pb2.HOOK_TYPE_POST_BACKUP
STOP, START = "#!/bin/sh\ndocker stop app\n", "#!/bin/sh\ndocker start app\n"
DUMP = '#!/bin/bash\npg_dump app > "${BACKUP_DIR}/app.sql"\n'
EXPORT = [
    {
        "repository_id": "r1",
        "pre_backup_script": STOP,
        "post_backup_script": START,
        "pre_hook_timeout": 60,
        "post_hook_timeout": 600,
        "skip_on_hook_failure": True,
    },
    {
        "repository_id": "r2",
        "pre_backup_script": STOP,
        "post_backup_script": None,
        "pre_hook_timeout": 300,
    },
    {"repository_id": 3, "pre_backup_script": DUMP, "post_backup_script": "  "},
]


def quiet(_line: str) -> None:
    pass


def export(tmp_path: Path, document: object = EXPORT) -> Path:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(document))
    return path


def importer(ctx: LibraryContext, source: Path) -> ImportInlineScripts:
    script = ImportInlineScripts(ctx)
    script.options.source = source
    return script


async def state(db: Database) -> tuple[dict[str, str], list[tuple]]:  # type: ignore[type-arg]
    """{script name: content digest}, [(repository, hook, script name, timeout, on_error)]."""
    S, A = models.Script, models.Assignment
    async with db.transaction() as session:
        names = {s.name: s.current_digest for s in await session.scalars(select(S))}
        rows = await session.execute(
            select(
                A.repository_id,
                A.hook_type,
                S.name,
                A.custom_timeout_seconds,
                A.on_error,
                A.enabled,
            )
            .join(S, S.id == A.script_id)
            .order_by(A.repository_id, A.hook_type)
        )
        return names, [tuple(r) for r in rows]


def name_of(content: str) -> str:
    import hashlib

    return module.script_name_for("sha256:" + hashlib.sha256(content.encode()).hexdigest())


async def test_inline_hooks_become_shared_scripts_and_assignments(
    ctx: LibraryContext, tmp_path: Path
) -> None:
    outcome = await runner.run(importer(ctx, export(tmp_path)), ctx.database, echo=quiet)
    assert outcome.status == "success", outcome.message
    names, assigned = await state(ctx.database)
    assert set(names) == {name_of(STOP), name_of(START), name_of(DUMP)}
    assert assigned == [
        ("3", PRE, name_of(DUMP), None, None, True),
        ("r1", PRE, name_of(STOP), 60, library_pb2.ON_ERROR_SKIP_BACKUP, True),
        ("r1", POST, name_of(START), 600, None, True),
        ("r2", PRE, name_of(STOP), 300, None, True),
    ]
    async with ctx.database.transaction() as session:
        dump = await session.scalar(
            select(models.Script).where(models.Script.name == name_of(DUMP))
        )
        stop = await session.scalar(
            select(models.Script).where(models.Script.name == name_of(STOP))
        )
    assert dump is not None and stop is not None
    # Used without a default: declared with an empty one, so the assignment is valid.
    assert [(p["name"], p["has_default"], p["default_value"]) for p in dump.parameters] == [
        ("BACKUP_DIR", True, "")
    ]
    assert (stop.category, stop.default_run_on) == ("imported", library_pb2.RUN_ON_SUCCESS)
    assert "pre-backup of repository r1; pre-backup of repository r2" in stop.description


async def test_rollback_removes_exactly_what_the_run_created(
    ctx: LibraryContext, tmp_path: Path
) -> None:
    # Already there before the import: a script of the same content and name, assigned.
    mine = await scripts.create_script(
        ctx, scripts.ScriptFields(name=name_of(START), content=START)
    )
    async with ctx.database.transaction() as session:
        from library_service.domain import assignments

        await assignments.assign(
            session,
            library_pb2.Assignment(
                repository_id="r1",
                script_id=mine.script.id,
                hook_type=POST,
                enabled=True,
            ),
        )
    before = await state(ctx.database)

    script = importer(ctx, export(tmp_path))
    assert (await runner.run(script, ctx.database, echo=quiet)).status == "success"
    assert len((await state(ctx.database))[1]) == 4
    undone = await runner.rollback(script, ctx.database, echo=quiet)
    assert undone.status == "rolled_back", undone.message
    assert await state(ctx.database) == before


async def test_rollback_refuses_when_an_imported_script_is_used_elsewhere(
    ctx: LibraryContext, tmp_path: Path
) -> None:
    script = importer(ctx, export(tmp_path))
    await runner.run(script, ctx.database, echo=quiet)
    async with ctx.database.transaction() as session:
        stop = await session.scalar(
            select(models.Script.id).where(models.Script.name == name_of(STOP))
        )
        from library_service.domain import assignments

        await assignments.assign(
            session,
            library_pb2.Assignment(
                repository_id="r9",
                script_id=stop,
                hook_type=PRE,
                enabled=True,
            ),
        )
    before = await state(ctx.database)
    refused = await runner.rollback(script, ctx.database, echo=quiet)
    assert refused.status == "failed"
    assert "assigned to repository r9" in refused.message
    assert await state(ctx.database) == before


async def test_a_failure_in_the_middle_leaves_nothing_behind(
    ctx: LibraryContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_assign = module.assignments.assign
    calls = 0

    async def failing_assign(session, message):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("database went away")
        return await real_assign(session, message)

    monkeypatch.setattr(module.assignments, "assign", failing_assign)
    before = await state(ctx.database)
    outcome = await runner.run(importer(ctx, export(tmp_path)), ctx.database, echo=quiet)
    assert outcome.status == "failed" and "database went away" in outcome.message
    assert await state(ctx.database) == before


async def test_a_bad_export_imports_nothing(ctx: LibraryContext, tmp_path: Path) -> None:
    path = export(tmp_path, [{"repository_id": "r1", "pre_backup_script": 7}])
    outcome = await runner.run(importer(ctx, path), ctx.database, echo=quiet)
    assert outcome.status == "failed"
    assert "[0].pre_backup_script: must be a string" in outcome.message
    assert await state(ctx.database) == ({}, [])


async def test_a_second_import_of_the_same_file_creates_nothing(
    ctx: LibraryContext, tmp_path: Path
) -> None:
    script = importer(ctx, export(tmp_path))
    await runner.run(script, ctx.database, echo=quiet)
    first = await state(ctx.database)
    again = await runner.run(script, ctx.database, force=True, echo=quiet)
    assert again.status == "success"
    assert await state(ctx.database) == first
    [last, *_] = await runner.tracker.recent(ctx.database.engine, "import_inline_scripts")
    assert last.details["created_script_ids"] == last.details["created_assignment_ids"] == []
