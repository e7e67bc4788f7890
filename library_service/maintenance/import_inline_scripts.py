"""Import legacy inline hooks (a JSON export, see inline_export.py) as library scripts
and assignments, so repositories keep running the same hooks through Hookshelf.

    python library_service/maintenance/import_inline_scripts.py --from export.json
    python library_service/maintenance/import_inline_scripts.py rollback

Decisions (for the docs):
- Identical inline scripts (same bytes) become one library script, named
  ``imported-inline-<first 12 hex of its sha256>``, category "imported"; each use is an
  assignment of it. A script of that name that exists already is used, not duplicated.
- A pre hook keeps its timeout (custom_timeout_seconds) and its failure policy (the
  export's continue/skip flags; otherwise the pre default, abort). A post hook keeps its
  timeout and runs after successful backups only (the default run_on), as inline post
  hooks did.
- An assignment that exists already (same repository, script and hook type) is kept.
- ``${NAME}`` without a default in an inline script would make NAME a required parameter
  and every assignment invalid; the import declares such names with an empty default
  (what the legacy runner gave an unset variable, give or take set -u) and says so.
- All or nothing: a failure removes what the run had created. The run's details list the
  ids it created; ``rollback`` removes exactly those, and refuses (changing nothing) when
  one of its scripts has been assigned elsewhere since.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import select

from library_service.context import LibraryContext
from library_service.domain import assignments, parameters, scripts, windows
from library_service.domain.parameters import ParameterSpec
from library_service.maintenance.context import standalone_context
from library_service.maintenance.framework import BaseScript, VerifyFailed, run_cli
from library_service.maintenance.inline_export import InlineHook, read_export
from library_service.store import models
from library_service.store.database import Database
from shared.errors import NotFound
from shared.stubs import library_pb2

AUTHOR = "import-inline"
CATEGORY = "imported"
MAX_DESCRIPTION_USES = 20


def script_name_for(digest: str) -> str:
    return f"imported-inline-{digest.removeprefix('sha256:')[:12]}"


def _description(uses: list[InlineHook]) -> str:
    listed = [f"{hook.hook_name} of repository {hook.repository_id}" for hook in uses]
    text = "Imported legacy inline hook: " + "; ".join(listed[:MAX_DESCRIPTION_USES])
    if len(listed) > MAX_DESCRIPTION_USES:
        text += f"; and {len(listed) - MAX_DESCRIPTION_USES} more"
    return text


def _undeclared_defaults(content: str) -> list[ParameterSpec]:
    """``${NAME}`` references without a default, declared with an empty one."""
    return [
        ParameterSpec(
            name=reference.name,
            default_value="",
            has_default=True,
            description="used by the imported inline script without a default",
        )
        for reference in parameters.parse_references(content)
        if not reference.has_default
    ]


class ImportInlineScripts(BaseScript):
    """Import legacy inline pre/post hooks as library scripts and assignments."""

    def __init__(self, context: LibraryContext | None = None) -> None:
        super().__init__("import_inline_scripts")
        self.context = context

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--from",
            dest="source",
            type=Path,
            default=None,
            help="the JSON export of the repositories' inline scripts",
        )

    def check_options(self, command: str) -> str | None:
        if command == "run" and self.options.source is None:
            return "--from FILE.json is required"
        return None

    def _context(self, db: Database) -> LibraryContext:
        return self.context or standalone_context(db)

    # --- run ---------------------------------------------------------------------------

    async def execute(self, db: Database) -> None:
        hooks = read_export(self.options.source)
        ctx = self._context(db)
        self.details = {
            "source": str(self.options.source),
            "created_script_ids": [],
            "created_assignment_ids": [],
        }
        try:
            await self._import(ctx, hooks)
        except BaseException:
            # All or nothing: take back what this run made, then report the failure.
            await asyncio.shield(self._remove(ctx, self.details))
            self.details["created_script_ids"], self.details["created_assignment_ids"] = [], []
            raise
        self.log(
            f"imported {len(hooks)} inline hook(s): "
            f"{len(self.details['created_script_ids'])} script(s) and "
            f"{len(self.details['created_assignment_ids'])} assignment(s) created"
        )

    async def _import(self, ctx: LibraryContext, hooks: list[InlineHook]) -> None:
        by_content: dict[str, list[InlineHook]] = defaultdict(list)
        for hook in hooks:
            by_content[hook.digest].append(hook)
        for digest, uses in by_content.items():
            script_id = await self._script_for(ctx, digest, uses)
            for hook in uses:
                await self._assign(ctx, script_id, hook)

    async def _script_for(self, ctx: LibraryContext, digest: str, uses: list[InlineHook]) -> str:
        name = script_name_for(digest)
        async with ctx.database.transaction() as session:
            existing = await session.scalar(
                select(models.Script.id).where(models.Script.name == name)
            )
        if existing is not None:
            self.log(f"{name}: exists already, used as it is")
            return existing
        content = uses[0].content
        declared = _undeclared_defaults(content)
        if declared:
            names = ", ".join(spec.name for spec in declared)
            self.log(f"{name}: declared {names} with empty defaults (no default in the script)")
        view = await scripts.create_script(
            ctx,
            scripts.ScriptFields(
                name=name,
                description=_description(uses),
                category=CATEGORY,
                content=content,
                parameters=declared,
            ),
            author=AUTHOR,
        )
        self.details["created_script_ids"].append(view.script.id)
        self.log(f"{name}: created from {len(uses)} inline hook(s)")
        return view.script.id

    async def _assign(self, ctx: LibraryContext, script_id: str, hook: InlineHook) -> None:
        overrides: dict[str, Any] = {}
        if hook.timeout_seconds is not None:
            overrides["custom_timeout_seconds"] = hook.timeout_seconds
        if hook.on_error is not None:
            overrides["on_error"] = hook.on_error
        message = library_pb2.Assignment(
            repository_id=hook.repository_id,
            script_id=script_id,
            hook_type=hook.hook_type,
            enabled=True,
            **overrides,
        )
        A = models.Assignment
        async with ctx.database.transaction() as session:
            existing = await session.scalar(
                select(A.id).where(
                    A.repository_id == hook.repository_id,
                    A.script_id == script_id,
                    A.hook_type == hook.hook_type,
                )
            )
            if existing is not None:
                self.log(f"repository {hook.repository_id}: {hook.hook_name} assigned already")
                return
            row = await assignments.assign(session, message)
        self.details["created_assignment_ids"].append(row.id)

    async def verify(self, db: Database) -> bool:
        """Every hook of the file is an assignment of its imported script."""
        hooks = read_export(self.options.source)
        A, S = models.Assignment, models.Script
        missing = []
        async with db.transaction() as session:
            for hook in hooks:
                found = await session.scalar(
                    select(A.id)
                    .join(S, S.id == A.script_id)
                    .where(
                        A.repository_id == hook.repository_id,
                        A.hook_type == hook.hook_type,
                        S.name == script_name_for(hook.digest),
                    )
                )
                if found is None:
                    missing.append(f"{hook.hook_name} of repository {hook.repository_id}")
        if missing:
            raise VerifyFailed("not assigned after the import: " + ", ".join(missing))
        return True

    # --- rollback ----------------------------------------------------------------------

    async def rollback(self, db: Database) -> None:
        assert self.target is not None
        created = self.target.details
        ctx = self._context(db)
        await self._refuse_if_used_elsewhere(ctx, created)
        await self._remove(ctx, created)
        self.log(
            f"removed {len(created.get('created_assignment_ids', []))} assignment(s) and "
            f"{len(created.get('created_script_ids', []))} script(s) made by run {self.target.id}"
        )

    async def _refuse_if_used_elsewhere(self, ctx: LibraryContext, created: dict) -> None:
        ours = set(created.get("created_assignment_ids", []))
        uses = []
        async with ctx.database.transaction() as session:
            for script_id in created.get("created_script_ids", []):
                others = [
                    a
                    for a in await assignments.list_for_script(session, script_id)
                    if a.id not in ours
                ]
                uses += [
                    f"script {script_id} assigned to repository {a.repository_id}" for a in others
                ]
                uses += [
                    f"script {script_id} in window {w.name!r}"
                    for w in await windows.referencing_script(session, script_id)
                ]
        if uses:
            raise RuntimeError(
                "cannot roll back without removing what the import did not create: "
                + "; ".join(uses)
                + " (unassign those first)"
            )

    async def _remove(self, ctx: LibraryContext, created: dict) -> None:
        """Remove the given assignments, then the given scripts; what is gone already is
        skipped."""
        async with ctx.database.transaction() as session:
            for assignment_id in created.get("created_assignment_ids", []):
                row = await session.get(models.Assignment, assignment_id)
                if row is not None:
                    await session.delete(row)
        for script_id in created.get("created_script_ids", []):
            try:
                await scripts.delete_script(ctx, script_id)
            except NotFound:
                continue


if __name__ == "__main__":
    run_cli(ImportInlineScripts())
