"""Maintenance windows: named pre/post script lists opened on a cron schedule.

The library keeps their definition (CRUD); opening and closing them is the executor's
(DESIGN §1, §2). ``next_run`` is not stored: it is computed from the cron expression and
the current time whenever a window is read, so it is never stale. Decisions:
- The cron expression has exactly five fields (minute hour day-of-month month
  day-of-week), evaluated in UTC; @-macros and a seconds field are rejected so every
  consumer can parse what is stored. An expression that can never match (``0 0 30 2 *``)
  is invalid too.
- Script ids must name existing scripts when they are set; the same script may appear
  twice in a list (a window may want to run it twice).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from library_service.domain import etags
from library_service.domain.assignments import check_update_mask
from library_service.domain.history import as_utc, timestamp_to_datetime
from library_service.domain.pagination import decode_page_token, encode_page_token, page_size_of
from library_service.domain.validation import (
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    check_id,
    check_name,
    check_text,
)
from library_service.store import models
from shared.errors import AlreadyExists, InvalidArgument, NotFound, Violations
from shared.stubs import library_pb2

CRON_FIELDS = 5
UPDATABLE_PATHS = frozenset(
    {
        "name",
        "description",
        "pre_script_ids",
        "post_script_ids",
        "cron_expression",
        "enabled",
        "last_run_time",
    }
)


def check_cron(field: str, expression: str) -> str:
    """A five-field cron expression that matches at least once. Returns it normalised
    (single spaces)."""
    fields = expression.split()
    if not fields:
        raise InvalidArgument(field, "is required")
    if len(expression) > MAX_NAME_LENGTH:
        raise InvalidArgument(field, f"must be at most {MAX_NAME_LENGTH} characters")
    if len(fields) != CRON_FIELDS:
        raise InvalidArgument(
            field,
            "must have exactly 5 fields: minute hour day-of-month month day-of-week "
            f"(got {len(fields)})",
        )
    normalised = " ".join(fields)
    if not croniter.is_valid(normalised):
        raise InvalidArgument(field, f"{normalised!r} is not a valid cron expression")
    try:
        croniter(normalised, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except (CroniterBadCronError, CroniterBadDateError) as error:
        raise InvalidArgument(field, f"{normalised!r} never matches a date") from error
    return normalised


def next_run(window: models.MaintenanceWindow, now: datetime) -> datetime | None:
    """The next time after ``now`` the window's cron matches (UTC); None when disabled."""
    if not window.enabled:
        return None
    try:
        return croniter(window.cron_expression, as_utc(now)).get_next(datetime)
    except (CroniterBadCronError, CroniterBadDateError):  # validated on write; be safe
        return None


def _check_script_ids(field: str, ids: Sequence[str], problems: Violations) -> list[str]:
    checked = []
    for index, raw in enumerate(ids):
        ident = problems.check(check_id, f"{field}[{index}]", raw)
        if ident is not None:
            checked.append(ident)
    return checked


async def _require_scripts(session: AsyncSession, field: str, ids: Sequence[str]) -> None:
    """NOT_FOUND naming the first id that is no script."""
    if not ids:
        return
    S = models.Script
    known = set(await session.scalars(select(S.id).where(S.id.in_(set(ids)))))
    for index, ident in enumerate(ids):
        if ident not in known:
            raise NotFound(
                f"script {ident} ({field}[{index}]) not found", metadata={"script_id": ident}
            )


async def _require_unique_name(
    session: AsyncSession, name: str, except_id: str | None = None
) -> None:
    W = models.MaintenanceWindow
    other = await session.scalar(select(W.id).where(W.name == name))
    if other is not None and other != except_id:
        raise AlreadyExists(
            f"a maintenance window named {name!r} already exists", metadata={"window_id": other}
        )


async def _flush(session: AsyncSession, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError as error:  # a concurrent create/rename took the name
        raise AlreadyExists(f"a maintenance window named {name!r} already exists") from error


async def create(
    session: AsyncSession, message: library_pb2.MaintenanceWindow
) -> models.MaintenanceWindow:
    """CreateMaintenanceWindow: validates everything, then inserts."""
    problems = Violations()
    name = problems.check(check_name, "window.name", message.name)
    problems.check(check_text, "window.description", message.description, MAX_DESCRIPTION_LENGTH)
    cron = problems.check(check_cron, "window.cron_expression", message.cron_expression)
    pre = _check_script_ids("window.pre_script_ids", message.pre_script_ids, problems)
    post = _check_script_ids("window.post_script_ids", message.post_script_ids, problems)
    problems.raise_if_any()
    assert name is not None  # raise_if_any raised when check_name did

    await _require_scripts(session, "window.pre_script_ids", pre)
    await _require_scripts(session, "window.post_script_ids", post)
    await _require_unique_name(session, name)
    now = datetime.now(UTC)
    row = models.MaintenanceWindow(
        id=str(uuid.uuid4()),
        name=name,
        description=message.description,
        pre_script_ids=pre,
        post_script_ids=post,
        cron_expression=cron,
        enabled=message.enabled,
        last_run_at=None,  # output only on create: nothing has run yet
        etag=etags.new_etag(),
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await _flush(session, name)
    return row


async def get(
    session: AsyncSession, field: str, window_id: str, *, for_update: bool = False
) -> models.MaintenanceWindow:
    W = models.MaintenanceWindow
    query = select(W).where(W.id == check_id(field, window_id))
    if for_update:
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        raise NotFound(
            f"maintenance window {window_id} not found", metadata={"window_id": window_id}
        )
    return row


@dataclass(frozen=True)
class WindowPage:
    windows: list[models.MaintenanceWindow]
    next_page_token: str


async def list_windows(session: AsyncSession, page_size: int, page_token: str) -> WindowPage:
    """Windows ordered by name (unique, so it is the whole keyset)."""
    size = page_size_of(page_size)
    last = decode_page_token(page_token, {})
    W = models.MaintenanceWindow
    query = select(W).order_by(W.name).limit(size + 1)
    if last is not None:
        if len(last) != 1 or not isinstance(last[0], str):
            raise InvalidArgument("page_token", "is not a token this server issued")
        query = query.where(W.name > last[0])
    rows = list(await session.scalars(query))
    token = ""
    if len(rows) > size:
        rows = rows[:size]
        token = encode_page_token([rows[-1].name], {})
    return WindowPage(rows, token)


async def update(
    session: AsyncSession, message: library_pb2.MaintenanceWindow, paths: Sequence[str]
) -> models.MaintenanceWindow:
    """UpdateMaintenanceWindow: changes exactly the masked fields.

    A set etag must match the stored one (else ABORTED). ``last_run_time`` in the mask
    but unset in the message clears it.
    """
    mask = check_update_mask(paths, UPDATABLE_PATHS)
    problems = Violations()
    problems.check(check_id, "window.id", message.id)
    name = cron = last_run = None
    if "name" in mask:
        name = problems.check(check_name, "window.name", message.name)
    if "description" in mask:
        problems.check(
            check_text, "window.description", message.description, MAX_DESCRIPTION_LENGTH
        )
    if "cron_expression" in mask:
        cron = problems.check(check_cron, "window.cron_expression", message.cron_expression)
    pre = post = None
    if "pre_script_ids" in mask:
        pre = _check_script_ids("window.pre_script_ids", message.pre_script_ids, problems)
    if "post_script_ids" in mask:
        post = _check_script_ids("window.post_script_ids", message.post_script_ids, problems)
    if "last_run_time" in mask and message.HasField("last_run_time"):
        last_run = problems.check(
            timestamp_to_datetime, "window.last_run_time", message.last_run_time
        )
    problems.raise_if_any()

    row = await get(session, "window.id", message.id, for_update=True)
    etags.check_etag(message.etag, row, "maintenance window")
    if pre is not None:
        await _require_scripts(session, "window.pre_script_ids", pre)
        row.pre_script_ids = pre
    if post is not None:
        await _require_scripts(session, "window.post_script_ids", post)
        row.post_script_ids = post
    if name is not None:
        await _require_unique_name(session, name, except_id=row.id)
        row.name = name
    if "description" in mask:
        row.description = message.description
    if cron is not None:
        row.cron_expression = cron
    if "enabled" in mask:
        row.enabled = message.enabled
    if "last_run_time" in mask:
        row.last_run_at = last_run
    etags.touch(row, datetime.now(UTC))
    await _flush(session, row.name)
    return row


async def delete(session: AsyncSession, window_id: str) -> None:
    """DeleteMaintenanceWindow: removes the definition; history of its runs stays."""
    row = await get(session, "id", window_id)
    await session.delete(row)
    await session.flush()


async def referencing_script(
    session: AsyncSession, script_id: str
) -> list[models.MaintenanceWindow]:
    """Windows whose pre or post list names the script (for DeleteScript to report).
    Windows are few and the lists are JSON, so this filters in Python."""
    rows = await session.scalars(select(models.MaintenanceWindow))
    return [
        row
        for row in rows
        if script_id in (row.pre_script_ids or []) or script_id in (row.post_script_ids or [])
    ]
