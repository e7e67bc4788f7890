"""The templates as library scripts: installing, upgrading and listing them.

Each shipped template is one script with ``is_template`` set, found by its
``template_name`` (not by its script name, which a user may change). Its script name is
``template:<name>``, so built-ins never take a name a user would pick.

Install rules (for the docs):
- A template that is not installed yet is created like any script (version 1, author
  "template"), through domain.scripts.create_script.
- An installed template older than the shipped one is upgraded: the new content becomes a
  new version (author "template") and description, category, timeout, run_on, parameters
  and template_version follow the package. One transaction; the mirror file after it.
- The same template_version with different content or fields (an edit through the API or
  of the mirrored file) is put back to the shipped one: templates belong to the package.
- An installed template newer than the shipped one (the package was downgraded) is left
  alone. So is every user's copy (InstantiateTemplate): those are plain scripts.
- A template the package no longer ships stays (it may be assigned); it is not upgraded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from library_service.context import LibraryContext
from library_service.domain import etags, parameters, scripts, versions
from library_service.domain.parameters import ParameterSpec
from library_service.store import models
from library_service.templates.catalog import TemplateSpec
from shared.errors import AlreadyExists

AUTHOR = "template"
SCRIPT_NAME_PREFIX = "template:"


def script_name_for(template_name: str) -> str:
    return f"{SCRIPT_NAME_PREFIX}{template_name}"


def parameter_specs(spec: TemplateSpec) -> list[ParameterSpec]:
    """The header's declarations: type and description. Defaults come from the content
    (``${NAME:-default}``), which the catalog test holds equal to the header's."""
    return [
        ParameterSpec(name=p.name, type=p.type, description=p.description) for p in spec.parameters
    ]


@dataclass
class InstallReport:
    """What an install did, template by template."""

    created: list[str] = field(default_factory=list)
    upgraded: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    newer_installed: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, list[str]]:
        return {key: list(value) for key, value in vars(self).items() if value}


async def find_installed(ctx: LibraryContext, template_name: str) -> models.Script | None:
    S = models.Script
    async with ctx.database.transaction() as session:
        return await session.scalar(
            select(S).where(S.is_template.is_(True), S.template_name == template_name)
        )


def _matches(row: models.Script, spec: TemplateSpec) -> bool:
    """True when the installed row is exactly what the package ships."""
    return (
        row.current_digest == spec.digest
        and row.template_version == spec.template_version
        and row.description == spec.description
        and row.category == spec.category
        and row.default_timeout_seconds == spec.timeout_seconds
        and row.default_run_on == spec.run_on
        and row.parameters == parameters.derive(spec.content, parameter_specs(spec))
    )


async def install(ctx: LibraryContext, catalog: Sequence[TemplateSpec]) -> InstallReport:
    """Bring the installed templates to the catalog (see the module's rules)."""
    report = InstallReport()
    for spec in catalog:
        row = await find_installed(ctx, spec.name)
        if row is None:
            try:
                await _create(ctx, spec)
            except AlreadyExists:
                # A user's script holds the name; say so, the other templates go on.
                report.conflicts.append(spec.name)
                continue
            report.created.append(spec.name)
        elif row.template_version > spec.template_version:
            report.newer_installed.append(spec.name)
        elif _matches(row, spec):
            report.unchanged.append(spec.name)
        else:
            upgrade = row.template_version < spec.template_version
            await _upgrade(ctx, row.id, spec)
            (report.upgraded if upgrade else report.restored).append(spec.name)
    return report


async def problems(ctx: LibraryContext, catalog: Sequence[TemplateSpec]) -> list[str]:
    """Why the installed templates are not the catalog's (empty when they are)."""
    found = []
    for spec in catalog:
        row = await find_installed(ctx, spec.name)
        if row is None:
            found.append(
                f"{spec.name} is not installed (is the name {script_name_for(spec.name)!r} "
                "taken by another script?)"
            )
        elif row.template_version < spec.template_version:
            found.append(
                f"{spec.name} is at version {row.template_version}, "
                f"the package ships {spec.template_version}"
            )
        elif row.template_version == spec.template_version and not _matches(row, spec):
            found.append(f"{spec.name} differs from the shipped version {spec.template_version}")
    return found


async def _create(ctx: LibraryContext, spec: TemplateSpec) -> None:
    await scripts.create_script(
        ctx,
        scripts.ScriptFields(
            name=script_name_for(spec.name),
            description=spec.description,
            category=spec.category,
            content=spec.content,
            default_timeout_seconds=spec.timeout_seconds,
            default_run_on=spec.run_on,
            parameters=parameter_specs(spec),
        ),
        author=AUTHOR,
        origin=scripts.TemplateOrigin(
            is_template=True, template_name=spec.name, template_version=spec.template_version
        ),
    )


async def _upgrade(ctx: LibraryContext, script_id: str, spec: TemplateSpec) -> None:
    """The new content as a new version and every field from the package, at once."""
    now = datetime.now(UTC)
    S = models.Script
    async with ctx.database.transaction() as session:
        row = await session.scalar(select(S).where(S.id == script_id).with_for_update())
        if row is None:  # deleted meanwhile: the next install creates it again
            return
        await versions.change_content(session, row, spec.content, AUTHOR, now)
        row.parameters = parameters.derive(spec.content, parameter_specs(spec))
        row.description = spec.description
        row.category = spec.category
        row.default_timeout_seconds = spec.timeout_seconds
        row.default_run_on = spec.run_on
        row.template_version = spec.template_version
        etags.touch(row, now)
    if ctx.mirror is not None:
        await ctx.mirror.publish(script_id)


@dataclass(frozen=True)
class InstalledTemplate:
    """An installed template with its current content, for ListTemplates."""

    script: models.Script
    content: str


async def list_installed(ctx: LibraryContext) -> list[InstalledTemplate]:
    """Every installed template, by template name."""
    S = models.Script
    async with ctx.database.transaction() as session:
        rows = list(
            await session.scalars(
                select(S).where(S.is_template.is_(True)).order_by(S.template_name, S.id)
            )
        )
        return [
            InstalledTemplate(row, (await versions.content_of(session, row.current_digest)).content)
            for row in rows
        ]
