"""install_templates against real databases: every shipped template becomes a library
script once (idempotent), a newer template_version upgrades it as a new version, users'
copies are never touched, and the library installs them at start-up."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from library_service.context import LibraryContext
from library_service.domain import scripts, versions
from library_service.maintenance.framework import run_script
from library_service.maintenance.install_templates import InstallTemplates
from library_service.store import models
from library_service.store.database import Database
from library_service.templates import catalog
from library_service.templates.instantiate import instantiate
from shared.settings import Settings
from shared.stubs import library_pb2

SHIPPED = {t.name: t for t in catalog.shipped()}


@pytest.fixture
def templates_dir(tmp_path: Path) -> Path:
    """A copy of the shipped templates the test may change (a newer package)."""
    directory = tmp_path / "templates"
    shutil.copytree(
        catalog.TEMPLATES_DIR, directory, ignore=shutil.ignore_patterns("*.py", "__pycache__")
    )
    return directory


async def template_rows(db: Database) -> dict[str, models.Script]:
    async with db.transaction() as session:
        rows = await session.scalars(
            select(models.Script).where(models.Script.is_template.is_(True))
        )
        return {row.template_name: row for row in rows}  # type: ignore[misc]


async def versions_of(db: Database, script_id: str) -> list[tuple[int, str, str]]:
    V = models.ScriptVersion
    async with db.transaction() as session:
        rows = await session.scalars(select(V).where(V.script_id == script_id).order_by(V.number))
        return [(v.number, v.digest, v.author) for v in rows]


async def install(ctx: LibraryContext, directory: Path, *, force: bool = False) -> str:
    outcome = await run_script(
        InstallTemplates(ctx, directory), database=ctx.database, force=force, wait_seconds=0
    )
    assert outcome.ok, outcome.message
    return outcome.status


async def test_every_template_is_installed_once(ctx: LibraryContext) -> None:
    assert await install(ctx, catalog.TEMPLATES_DIR) == "success"
    rows = await template_rows(ctx.database)
    assert set(rows) == set(SHIPPED)
    for name, row in rows.items():
        spec = SHIPPED[name]
        assert row.name == f"template:{name}"
        assert (row.template_version, row.current_digest) == (spec.template_version, spec.digest)
        assert (row.category, row.description) == (spec.category, spec.description)
        assert (row.default_timeout_seconds, row.default_run_on) == (
            spec.timeout_seconds,
            spec.run_on,
        )
        assert {
            p["name"]: (p["has_default"], p["default_value"], p["description"])
            for p in row.parameters
        } == {p.name: (p.has_default, p.default_value, p.description) for p in spec.parameters}
        assert await versions_of(ctx.database, row.id) == [(1, spec.digest, "template")]
    password = next(p for p in rows["mysql-dump"].parameters if p["name"] == "MYSQL_PASSWORD")
    assert password["type"] == library_pb2.PARAMETER_TYPE_SECRET
    assert rows["docker-start"].default_run_on == library_pb2.RUN_ON_ALWAYS

    # Idempotent: nothing changed, nothing to do; forced, it changes nothing either.
    assert await install(ctx, catalog.TEMPLATES_DIR) == "skipped"
    assert await install(ctx, catalog.TEMPLATES_DIR, force=True) == "success"
    again = await template_rows(ctx.database)
    assert {n: (r.id, r.etag, r.current_digest) for n, r in again.items()} == {
        n: (r.id, r.etag, r.current_digest) for n, r in rows.items()
    }
    for row in again.values():
        assert len(await versions_of(ctx.database, row.id)) == 1


async def test_a_newer_template_version_upgrades_without_touching_copies(
    ctx: LibraryContext, templates_dir: Path
) -> None:
    await install(ctx, templates_dir)
    copy = await instantiate(ctx, "docker-stop", "stop-nextcloud", {"CONTAINERS": "nextcloud"})
    before = (await template_rows(ctx.database))["docker-stop"]

    # The next package: docker-stop at version 2, with new content.
    path = templates_dir / "docker-stop.sh"
    text = path.read_text().replace("template_version: 1", "template_version: 2")
    path.write_text(
        text.replace('echo "docker-stop: ${#containers', 'echo "docker-stop: all ${#containers')
    )
    # The template file changed: the script runs again by itself, no --force needed.
    assert await install(ctx, templates_dir) == "success"

    after = (await template_rows(ctx.database))["docker-stop"]
    upgraded = catalog.load_file(path)
    assert (after.id, after.template_version, after.current_digest) == (
        before.id,
        2,
        upgraded.digest,
    )
    assert after.etag != before.etag
    assert await versions_of(ctx.database, after.id) == [
        (1, before.current_digest, "template"),
        (2, upgraded.digest, "template"),
    ]
    async with ctx.database.transaction() as session:
        mine = await session.get(models.Script, copy.script.id)
    assert mine is not None
    assert (mine.current_digest, mine.template_version, mine.etag) == (
        copy.script.current_digest,
        1,
        copy.script.etag,
    )
    assert await versions_of(ctx.database, mine.id) == [
        (1, before.current_digest, "template:docker-stop@1")
    ]

    # An older package (a downgrade) leaves the newer template alone.
    path.write_text(SHIPPED["docker-stop"].content)
    assert await install(ctx, templates_dir) == "success"
    assert (await template_rows(ctx.database))["docker-stop"].template_version == 2


async def test_an_edited_template_is_put_back(ctx: LibraryContext) -> None:
    await install(ctx, catalog.TEMPLATES_DIR)
    row = (await template_rows(ctx.database))["postgres-dump"]
    # Neither the API nor the file mirror lets a template be edited; a drift can still
    # come from outside both (SQL by hand, an older release), so make one in the store.
    async with ctx.database.transaction() as session:
        drifted = await session.get(models.Script, row.id)
        await versions.change_content(
            session, drifted, "#!/bin/sh\necho edited\n", "someone", datetime.now(UTC)
        )
        drifted.category = "mine"
    assert await install(ctx, catalog.TEMPLATES_DIR, force=True) == "success"
    restored = (await template_rows(ctx.database))["postgres-dump"]
    assert (restored.current_digest, restored.category) == (
        SHIPPED["postgres-dump"].digest,
        "database",
    )
    assert [author for _, _, author in await versions_of(ctx.database, row.id)] == [
        "template",
        "someone",
        "template",
    ]


async def test_a_name_taken_by_a_user_script_fails_the_install_and_says_which(
    ctx: LibraryContext,
) -> None:
    await scripts.create_script(
        ctx, scripts.ScriptFields(name="template:docker-stop", content="echo mine\n")
    )
    outcome = await run_script(InstallTemplates(ctx), database=ctx.database, wait_seconds=0)
    assert outcome.status == "failed"
    assert "docker-stop is not installed" in outcome.message
    rows = await template_rows(ctx.database)
    assert set(rows) == set(SHIPPED) - {"docker-stop"}


async def test_the_library_installs_the_templates_at_start_up(
    library_settings: Settings,
) -> None:
    from library_service.app import start_library

    settings = library_settings.model_copy(update={"install_templates": True})
    for _ in range(2):  # the second start finds them done
        app = await start_library(settings)
        try:
            rows = await template_rows(app.context.database)
            assert set(rows) == set(SHIPPED)
            mirrored = app.context.settings.data_dir / "scripts" / "library"
            assert (mirrored / "template-docker-stop.sh").read_text() == SHIPPED[
                "docker-stop"
            ].content
        finally:
            await app.stop(0)
