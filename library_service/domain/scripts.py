"""Scripts: create, read, list, update and delete the library's hook scripts.

Each function is one unit of work: validate everything first (bad input changes
nothing), one database transaction, then, after the commit, the file mirror (the database
is the record, the file its mirror).

Decisions (for the docs):
- Names are unique as given (case-sensitive), stripped of surrounding whitespace.
- ``request_id`` (AIP-155): a create with a request_id already used returns the script that
  request created, whatever the new request's body says; once that script is deleted the
  id is free again. 1-255 characters.
- Create: a zero ``default_timeout_seconds`` is "unset" (300); UNSPECIFIED
  ``default_run_on`` is RUN_ON_SUCCESS.
- Update (AIP-134): ``update_mask`` is required: an empty mask is INVALID_ARGUMENT rather
  than "replace everything", so a client that forgets it cannot wipe fields. A masked
  ``default_timeout_seconds`` of 0 is INVALID_ARGUMENT (0 is no timeout); a masked
  ``default_run_on`` of UNSPECIFIED resets it to RUN_ON_SUCCESS. An update that changes
  nothing keeps the etag; every real change makes a new one.
- Delete: refused (FAILED_PRECONDITION, reason SCRIPT_IN_USE) while the script is assigned
  or named by a maintenance window; the message and ErrorInfo metadata say where. With
  ``force`` the assignments are removed (and returned) and the script is taken out of the
  windows' lists. Versions go with the script; contents and executions stay.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Label,
    Row,
    Select,
    String,
    and_,
    bindparam,
    delete,
    exists,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from library_service.domain import assignments as assignments_domain
from library_service.domain import etags, history, parameters, slugs, versions, windows
from library_service.domain.assignments import check_update_mask
from library_service.domain.mirror import file_path_in, mirror_root
from library_service.domain.pagination import decode_page_token, encode_page_token, page_size_of
from library_service.domain.parameters import ParameterSpec
from library_service.domain.search import contains_pattern, contains_text
from library_service.domain.validation import (
    MAX_CATEGORY_LENGTH,
    MAX_DESCRIPTION_LENGTH,
    check_id,
    check_name,
    check_text,
)
from library_service.store import models
from library_service.store.storage import StorageFull
from shared.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Violations,
)
from shared.hook_policy import (
    DEFAULT_RUN_ON,
    DEFAULT_TIMEOUT_SECONDS,
    check_enum,
    check_timeout,
)
from shared.stubs import library_pb2

if TYPE_CHECKING:
    from library_service.context import LibraryContext

DEFAULT_RECENT_EXECUTIONS = 10
MAX_RECENT_EXECUTIONS = 100
MAX_QUERY_LENGTH = 255
# How many places a refused delete lists (the details travel in trailers, which are small).
MAX_LISTED_USES = 20
UPDATABLE_PATHS = frozenset(
    {
        "name",
        "description",
        "category",
        "content",
        "default_timeout_seconds",
        "default_run_on",
        "parameters",
    }
)


class TemplateReadOnly(FailedPrecondition):
    reason = "TEMPLATE_READ_ONLY"


class ScriptInUse(FailedPrecondition):
    """The script is assigned or named by a maintenance window."""

    reason = "SCRIPT_IN_USE"


@dataclass(frozen=True)
class ScriptFields:
    """A script's writable fields as a request gives them (not yet validated)."""

    name: str = ""
    description: str = ""
    category: str = ""
    content: str = ""
    default_timeout_seconds: int = 0
    default_run_on: int = 0
    parameters: Sequence[ParameterSpec] = ()


@dataclass(frozen=True)
class TemplateOrigin:
    """For scripts made from templates (the templates area sets it; the API never)."""

    is_template: bool = False
    template_name: str | None = None
    template_version: int = 0


@dataclass(frozen=True)
class ScriptView:
    """A script with what is derived from other tables."""

    # A loaded row (writes) or a Core row with the same attributes (reads).
    script: models.Script | Row[Any]
    version_count: int
    usage_count: int
    last_used_at: datetime | None
    file_path: str
    # The current content; empty in lists (a page of 1 MiB scripts would not fit a
    # message): GetScript or GetScriptContent(digest) have it.
    content: str = ""


@dataclass(frozen=True)
class ScriptDetail:
    view: ScriptView
    assignments: list[models.Assignment]
    recent_executions: list[models.Execution]


@dataclass(frozen=True)
class ScriptPage:
    scripts: list[ScriptView]
    next_page_token: str


@dataclass(frozen=True)
class ScriptFilter:
    """ListScripts filters; empty means "any"."""

    query: str = ""
    category: str = ""
    templates_only: bool = False


@dataclass(frozen=True)
class DeletedScript:
    name: str
    removed_assignments: list[models.Assignment] = field(default_factory=list)
    # The script's SECRET parameters, whose values the removed assignments must mask.
    secret_names: frozenset[str] = frozenset()


# --- checks ------------------------------------------------------------------------------


def check_category(path: str, value: str) -> str:
    """Like a name (no control characters) but optional and at most 64 characters."""
    if len(value) > MAX_CATEGORY_LENGTH:
        raise InvalidArgument(path, f"must be at most {MAX_CATEGORY_LENGTH} characters")
    return check_name(path, value, required=False)


def _check_content(path: str, content: str) -> str:
    versions.encode_content(path, content)
    return content


def _checked(fields: ScriptFields, paths: Collection[str], *, creating: bool) -> ScriptFields:
    """The named fields validated and normalized (all problems reported at once)."""
    problems = Violations()
    values: dict[str, Any] = {}

    def check(name: str, fn: Any, *args: Any) -> None:
        if name not in paths:
            return
        try:
            values[name] = fn(f"script.{name}", *args)
        except InvalidArgument as error:
            problems.items.extend(error.violations)

    check("name", check_name, fields.name)
    check("description", check_text, fields.description, MAX_DESCRIPTION_LENGTH)
    check("category", check_category, fields.category)
    check("content", _check_content, fields.content)
    timeout = fields.default_timeout_seconds
    if creating and timeout == 0:
        timeout = DEFAULT_TIMEOUT_SECONDS
    check("default_timeout_seconds", check_timeout, timeout)
    check(
        "default_run_on",
        lambda path, value: (
            check_enum(path, value, library_pb2.RunOn.DESCRIPTOR, allow_unspecified=True)
            or DEFAULT_RUN_ON
        ),
        fields.default_run_on,
    )
    check("parameters", parameters.check_specs, fields.parameters)
    problems.raise_if_any()
    return ScriptFields(**values)


def _check_selector(script_id: str, name: str) -> tuple[str, str]:
    if script_id:
        return check_id("id", script_id), ""
    if name:
        return "", check_name("name", name)
    raise InvalidArgument("id", "id or name is required")


def _check_recent_limit(limit: int) -> int:
    if limit < 0:
        raise InvalidArgument("recent_executions_limit", "must not be negative")
    return min(limit or DEFAULT_RECENT_EXECUTIONS, MAX_RECENT_EXECUTIONS)


# --- reading -----------------------------------------------------------------------------

# GetScript and ListScripts read with Core statements over the tables, built once and run
# with bound values: building statements and ORM objects cost more than the database on
# these paths. The derived values are correlated subqueries of the same statement, so a
# page is one round trip. Writes keep the ORM (they change the rows they load).
_S = models.Script.__table__
_V = models.ScriptVersion.__table__
_E = models.Execution.__table__
_C = models.ScriptContent.__table__
_A = models.Assignment.__table__


def _derived(script_id: ColumnElement[str]) -> list[Label[Any]]:
    """version_count, usage_count and last_used_at of the script ``script_id`` names,
    counted as history.usage_for_scripts counts them (test runs are not use)."""
    used = and_(_E.c.script_id == script_id, _E.c.trigger != history.NOT_USAGE)
    return [
        select(func.count())
        .select_from(_V)
        .where(_V.c.script_id == script_id)
        .scalar_subquery()
        .label("version_count"),
        select(func.count()).select_from(_E).where(used).scalar_subquery().label("usage_count"),
        select(func.max(_E.c.start_time)).where(used).scalar_subquery().label("last_used_at"),
    ]


@functools.cache
def _page_statement(
    *, query: bool, category: bool, templates_only: bool, after: bool, sqlite: bool
) -> Select[Any]:
    """ListScripts for one combination of filters; values are bound at execution
    (``pattern``, ``category``, ``after``, ``limit``). The page is chosen first and the
    derived values computed for its rows only."""
    page = select(_S)
    if query:
        page = page.where(
            contains_text(
                [_S.c.name, _S.c.description], bindparam("pattern", type_=String), sqlite=sqlite
            )
        )
    if category:
        page = page.where(_S.c.category == bindparam("category"))
    if templates_only:
        page = page.where(_S.c.is_template.is_(True))
    if after:
        page = page.where(_S.c.name > bindparam("after"))
    chosen = page.order_by(_S.c.name).limit(bindparam("limit", type_=Integer)).subquery("page")
    return select(chosen, *_derived(chosen.c.id)).order_by(chosen.c.name)


@functools.cache
def _script_statement(*, by_id: bool) -> Select[Any]:
    """GetScript's script (by ``key``, an id or a name) with its derived values, content,
    and whether it has any assignments or executions to fetch."""
    key = _S.c.id if by_id else _S.c.name
    return (
        select(
            _S,
            *_derived(_S.c.id),
            _C.c.content,
            exists().where(_A.c.script_id == _S.c.id).label("assigned"),
            exists().where(_E.c.script_id == _S.c.id).label("executed"),
        )
        .join(_C, _C.c.digest == _S.c.current_digest)
        .where(key == bindparam("key"))
    )


def _view_of(row: Row[Any], root: str, content: str = "") -> ScriptView:
    """A view of a row of ``_page_statement`` or ``_script_statement``."""
    return ScriptView(
        script=row,
        version_count=row.version_count,
        usage_count=row.usage_count,
        last_used_at=history.as_utc(row.last_used_at),
        file_path=file_path_in(root, row.slug),
        content=content,
    )


async def _views(
    ctx: LibraryContext, session: AsyncSession, rows: Sequence[models.Script]
) -> list[ScriptView]:
    """Views without content of loaded rows, derived values fetched for all at once."""
    ids = [row.id for row in rows]
    usage = await history.usage_for_scripts(session, ids)
    counts = await versions.version_counts(session, ids)
    root = str(mirror_root(ctx.settings.data_dir))
    return [
        ScriptView(
            script=row,
            version_count=counts.get(row.id, 0),
            usage_count=usage[row.id][0],
            last_used_at=usage[row.id][1],
            file_path=file_path_in(root, row.slug),
        )
        for row in rows
    ]


async def _view(ctx: LibraryContext, session: AsyncSession, row: models.Script) -> ScriptView:
    """One view, with content."""
    view = (await _views(ctx, session, [row]))[0]
    content = (await versions.content_of(session, row.current_digest)).content
    return replace(view, content=content)


def _not_found(script_id: str, name: str) -> NotFound:
    what = f"id {script_id}" if script_id else f"name {name!r}"
    return NotFound(
        f"no script with {what}",
        metadata={"id": script_id} if script_id else {"name": name},
    )


async def _find(
    session: AsyncSession, *, script_id: str = "", name: str = "", lock: bool = False
) -> models.Script:
    """The script, NOT_FOUND otherwise; ``lock`` holds its row until the commit
    (PostgreSQL; SQLite has one writer anyway) so concurrent changes queue up."""
    S = models.Script
    query = select(S).where(S.id == script_id if script_id else S.name == name)
    if lock:
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        raise _not_found(script_id, name)
    return row


async def _ensure_name_free(session: AsyncSession, name: str) -> None:
    S = models.Script
    taken = await session.scalar(select(S.id).where(S.name == name))
    if taken is not None:
        raise AlreadyExists(
            f"a script named {name!r} already exists",
            metadata={"name": name, "script_id": taken},
        )


async def import_mirror_edit(ctx: LibraryContext, *, script_id: str = "", name: str = "") -> None:
    """Before a script is read: an edit made to its mirrored file becomes a new version.
    Nothing to do without the mirror or when the file is as the mirror left it. A bad
    selector is INVALID_ARGUMENT here already, before anything is looked up."""
    script_id, name = _check_selector(script_id, name)
    if ctx.mirror is not None:
        await ctx.mirror.refresh(script_id=script_id, name=name)


async def get_script(
    ctx: LibraryContext, *, script_id: str = "", name: str = "", recent_limit: int = 0
) -> ScriptDetail:
    """GetScript: the script by id or name, where it is assigned, its newest executions.
    Callers import an edit of its mirrored file first (import_mirror_edit), so that the
    answer is never staler than the file."""
    script_id, name = _check_selector(script_id, name)
    limit = _check_recent_limit(recent_limit)
    root = str(mirror_root(ctx.settings.data_dir))
    async with ctx.database.reading() as session:
        row = (
            await session.execute(
                _script_statement(by_id=bool(script_id)), {"key": script_id or name}
            )
        ).first()
        if row is None:
            raise _not_found(script_id, name)
        # One round trip when there is nothing else to fetch, the usual case.
        return ScriptDetail(
            view=_view_of(row, root, row.content),
            assignments=(
                await assignments_domain.list_for_script(session, row.id) if row.assigned else []
            ),
            recent_executions=(
                await history.recent_for_script(session, row.id, limit) if row.executed else []
            ),
        )


async def list_scripts(
    ctx: LibraryContext, filters: ScriptFilter, page_size: int, page_token: str
) -> ScriptPage:
    """ListScripts: ordered by name, keyset-paged (a page costs the same however deep),
    filtered by free text (name or description contains it, any case), category and
    templates only."""
    query_text = check_text("query", filters.query, MAX_QUERY_LENGTH).strip()
    category = check_category("category", filters.category)
    size = page_size_of(page_size)
    fingerprint = {"q": query_text, "c": category, "t": filters.templates_only}
    last = decode_page_token(page_token, fingerprint)

    params: dict[str, Any] = {"limit": size + 1}
    if query_text:
        params["pattern"] = contains_pattern(query_text)
    if category:
        params["category"] = category
    if last is not None:
        if len(last) != 1 or not isinstance(last[0], str):
            raise InvalidArgument("page_token", "is not a token this server issued")
        params["after"] = last[0]
    statement = _page_statement(
        query=bool(query_text),
        category=bool(category),
        templates_only=filters.templates_only,
        after=last is not None,
        sqlite=ctx.database.is_sqlite,
    )
    root = str(mirror_root(ctx.settings.data_dir))
    async with ctx.database.reading() as session:
        rows = (await session.execute(statement, params)).all()
    token = ""
    if len(rows) > size:
        rows = rows[:size]
        token = encode_page_token([rows[-1].name], fingerprint)
    return ScriptPage([_view_of(row, root) for row in rows], token)


async def list_script_versions(
    ctx: LibraryContext, script_id: str, page_size: int, page_token: str
) -> versions.VersionPage:
    """ListScriptVersions: newest first."""
    script_id = check_id("script_id", script_id)
    async with ctx.database.transaction() as session:
        await _find(session, script_id=script_id)
        return await versions.list_versions(session, script_id, page_size, page_token)


async def get_content(ctx: LibraryContext, digest: str) -> models.ScriptContent:
    """GetScriptContent: any version's bytes, the script deleted or not."""
    async with ctx.database.transaction() as session:
        return await versions.content_of(session, digest)


# --- writing -----------------------------------------------------------------------------


async def create_script(
    ctx: LibraryContext,
    fields: ScriptFields,
    *,
    author: str = "",
    request_id: str = "",
    origin: TemplateOrigin = TemplateOrigin(),  # frozen: sharing the default is safe
) -> ScriptView:
    """CreateScript: the script and its version 1. A request_id already used returns the
    script it created (nothing else happens)."""
    values = _checked(fields, UPDATABLE_PATHS, creating=True)
    author = check_name("author", author, required=False)
    request_id = check_name("request_id", request_id, required=False)
    now = datetime.now(UTC)
    try:
        async with ctx.database.transaction() as session:
            if request_id:
                earlier = await session.scalar(
                    select(models.Script).where(models.Script.request_id == request_id)
                )
                if earlier is not None:
                    return await _view(ctx, session, earlier)
            await _ensure_name_free(session, values.name)
            digest = await versions.store_content(session, values.content, now)
            row = models.Script(
                id=str(uuid.uuid4()),
                name=values.name,
                slug=await slugs.unique_slug(session, values.name),
                description=values.description,
                category=values.category,
                current_digest=digest,
                default_timeout_seconds=values.default_timeout_seconds,
                default_run_on=values.default_run_on,
                is_template=origin.is_template,
                template_name=origin.template_name,
                template_version=origin.template_version,
                parameters=parameters.derive(values.content, values.parameters),
                etag=etags.new_etag(),
                request_id=request_id or None,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            await session.flush()
            await versions.add_version(session, row.id, digest, author, now)
            view = await _view(ctx, session, row)
    except IntegrityError:
        return await _after_lost_race(ctx, values.name, request_id)
    if ctx.mirror is not None:
        await ctx.mirror.publish(row.id)
    return view


async def _after_lost_race(ctx: LibraryContext, name: str, request_id: str) -> ScriptView:
    """A concurrent create won the name, the request_id or the slug: answer as if this
    request had come second."""
    async with ctx.database.transaction() as session:
        if request_id:
            earlier = await session.scalar(
                select(models.Script).where(models.Script.request_id == request_id)
            )
            if earlier is not None:
                return await _view(ctx, session, earlier)
        await _ensure_name_free(session, name)
    raise Aborted("a concurrent change to the library conflicted with this one; retry")


async def update_script(
    ctx: LibraryContext,
    script_id: str,
    fields: ScriptFields,
    paths: Sequence[str],
    *,
    etag: str = "",
    author: str = "",
) -> ScriptView:
    """UpdateScript: changes exactly the fields named in ``paths``. New content becomes a
    new version (the same content does not); a rename moves the mirrored file."""
    mask = check_update_mask(paths, UPDATABLE_PATHS)
    script_id = check_id("script.id", script_id)
    values = _checked(fields, mask, creating=False)
    author = check_name("author", author, required=False)
    if ctx.mirror is not None:
        # An edit of the file counts as a change the caller's etag has not seen.
        await ctx.mirror.refresh(script_id=script_id)
    now = datetime.now(UTC)
    try:
        async with ctx.database.transaction() as session:
            row = await _find(session, script_id=script_id, lock=True)
            _refuse_template(row, "changed")
            etags.check_etag(etag, row, "script")
            changed = await _apply(session, row, values, mask, author, now)
            if changed and "parameters" in mask:
                # A parameter that became SECRET must not leave its values in the clear.
                await assignments_domain.seal_secret_values(session, row, ctx.cipher)
            if changed:
                etags.touch(row, now)
            view = await _view(ctx, session, row)
    except IntegrityError:
        async with ctx.database.transaction() as session:
            await _ensure_name_free(session, values.name)
        raise Aborted("a concurrent change to the library conflicted with this one; retry")
    if changed and ctx.mirror is not None:
        await ctx.mirror.publish(script_id)
    return view


async def _apply(
    session: AsyncSession,
    row: models.Script,
    values: ScriptFields,
    mask: Collection[str],
    author: str,
    now: datetime,
) -> bool:
    """Sets the masked fields on ``row``; True when anything changed."""
    changed = False
    if "name" in mask and values.name != row.name:
        await _ensure_name_free(session, values.name)
        row.name = values.name
        if not slugs.fits(row.slug, slugs.slugify(values.name)):
            row.slug = await slugs.unique_slug(session, values.name)
        changed = True
    for simple in ("description", "category", "default_timeout_seconds", "default_run_on"):
        if simple in mask and getattr(values, simple) != getattr(row, simple):
            setattr(row, simple, getattr(values, simple))
            changed = True
    if "parameters" in mask:
        content = (
            values.content
            if "content" in mask
            else (await versions.content_of(session, row.current_digest)).content
        )
        derived = parameters.derive(content, values.parameters)
        if derived != row.parameters:
            row.parameters = derived
            changed = True
    if "content" in mask and await versions.change_content(
        session, row, values.content, author, now
    ):
        changed = True
    return changed


def _hook_name(hook_type: int) -> str:
    return library_pb2.HookType.Name(hook_type).removeprefix("HOOK_TYPE_")  # type: ignore[arg-type]  # hook_type is a plain int here; Name wants the ValueType


def _in_use(
    row: models.Script,
    assigned: Sequence[models.Assignment],
    in_windows: Sequence[models.MaintenanceWindow],
) -> ScriptInUse:
    uses = [f"repository {a.repository_id!r} ({_hook_name(a.hook_type)})" for a in assigned]
    uses += [f"maintenance window {w.name!r}" for w in in_windows]
    listed = ", ".join(uses[:MAX_LISTED_USES])
    if len(uses) > MAX_LISTED_USES:
        listed += f" and {len(uses) - MAX_LISTED_USES} more"
    return ScriptInUse(
        f"script {row.name!r} is in use: {listed}; unassign it first, or delete with force",
        metadata={
            "script_id": row.id,
            "assignment_count": str(len(assigned)),
            "window_count": str(len(in_windows)),
            "assignments": json.dumps(
                [
                    {
                        "id": a.id,
                        "repository_id": a.repository_id,
                        "hook_type": _hook_name(a.hook_type),
                    }
                    for a in assigned[:MAX_LISTED_USES]
                ]
            ),
            "windows": json.dumps(
                [{"id": w.id, "name": w.name} for w in in_windows[:MAX_LISTED_USES]]
            ),
        },
    )


async def delete_script(
    ctx: LibraryContext, script_id: str, *, etag: str = "", force: bool = False
) -> DeletedScript:
    """DeleteScript: refused while the script is in use unless ``force``. Its mirrored
    file goes with it; its contents and execution history stay. On a full disk it gives
    up the space reserve and tries once more: deleting is how space is freed."""
    script_id = check_id("id", script_id)
    if ctx.mirror is not None:
        await ctx.mirror.refresh(script_id=script_id)
    try:
        return await _delete_script(ctx, script_id, etag=etag, force=force)
    except StorageFull:
        reserve = ctx.database.space_reserve
        if reserve is None or not reserve.release():
            raise
        return await _delete_script(ctx, script_id, etag=etag, force=force)


async def _delete_script(
    ctx: LibraryContext, script_id: str, *, etag: str, force: bool
) -> DeletedScript:
    now = datetime.now(UTC)
    async with ctx.database.transaction() as session:
        row = await _find(session, script_id=script_id, lock=True)
        _refuse_template(row, "deleted")
        etags.check_etag(etag, row, "script")
        assigned = await assignments_domain.list_for_script(session, row.id)
        in_windows = await windows.referencing_script(session, row.id)
        if (assigned or in_windows) and not force:
            raise _in_use(row, assigned, in_windows)
        for window in in_windows:
            window.pre_script_ids = [i for i in window.pre_script_ids if i != row.id]
            window.post_script_ids = [i for i in window.post_script_ids if i != row.id]
            etags.touch(window, now)
        await session.flush()
        A, S = models.Assignment, models.Script
        await session.execute(delete(A).where(A.script_id == row.id))
        # Versions go by ON DELETE CASCADE; contents and executions have no link to go by.
        await session.execute(delete(S).where(S.id == row.id))
        name, hidden = row.name, frozenset(parameters.secret_names(row.parameters or []))
    if ctx.mirror is not None:
        await ctx.mirror.publish(script_id)
    return DeletedScript(name=name, removed_assignments=list(assigned), secret_names=hidden)


def _refuse_template(row: models.Script, action: str) -> None:
    """Built-in templates belong to the release: start-up reinstalls them, so a change
    made through the API would silently vanish. Users instantiate a copy they own."""
    if row.is_template:
        raise TemplateReadOnly(
            f"{row.name} is a built-in template and cannot be {action}; "
            "InstantiateTemplate makes a copy of your own",
            metadata={"script_id": row.id},
        )
