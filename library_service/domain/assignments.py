"""Assignments: a script attached to a repository's pre or post chain.

A chain is the set of assignments sharing (repository_id, hook_type). Its order is
``(execution_order, id)``: equal orders are legal and break by assignment id, so every
reader sees the same order. Repositories are opaque ids owned by the orchestrator; the
library does not know them in advance and never rejects one for being unknown.

Decisions (documented in the README):
- ``execution_order`` is a plain int32, so "unset" cannot be told from 0: an AssignScript
  with order 0 appends the step after the chain's current last (max + ORDER_STEP, or 0
  for an empty chain). Put a step first with ReorderAssignments or UpdateAssignment.
- ``enabled`` has presence: an AssignScript that does not send it creates an enabled
  assignment, and an update mask naming it while it is unset enables it again.
- ``custom_run_on`` is accepted for both hook types and carried into every plan step; only
  the post chain consults it (pre hooks run whenever enabled, DESIGN §2).
- An override set to its enum's UNSPECIFIED value means "no override", like leaving it
  unset. Unknown enum numbers are rejected.
- ``parameter_values`` replaces the whole map when named in an update mask. Names the
  script does not declare are allowed (a script may read any variable); declared
  parameters without a default must be given a value: FAILED_PRECONDITION (reason
  PARAMETER_VALUE_REQUIRED) naming them, here and again at plan time.
- SECRET parameters' values are stored encrypted and read back as ``secrets.MASK``; the
  mask sent back keeps the stored secret, and the mask for a secret with nothing stored
  is INVALID_ARGUMENT (see domain/secrets.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from library_service.domain import secrets
from library_service.domain.pagination import decode_page_token, encode_page_token, page_size_of
from library_service.domain.parameters import PARAMETER_NAME, RESERVED_PREFIX, secret_names
from library_service.domain.validation import (
    MAX_EXECUTION_ORDER,
    check_id,
    check_name,
)
from library_service.store import models
from shared.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Violations
from shared.hook_policy import check_enum, check_timeout
from shared.stubs import library_pb2

# Room between neighbours, so a step can be slotted in with one UpdateAssignment.
ORDER_STEP = 10
MAX_PARAMETER_VALUE_LENGTH = 65_536

UPDATABLE_PATHS = frozenset(
    {
        "execution_order",
        "enabled",
        "custom_timeout_seconds",
        "custom_run_on",
        "on_error",
        "parameter_values",
    }
)


# --- checks ------------------------------------------------------------------------------


def check_repository_id(field: str, value: str) -> str:
    """1-255 characters, no control characters. Not stripped: it is the caller's id."""
    check_name(field, value)
    return value


def check_hook_type(field: str, value: int) -> int:
    return check_enum(field, value, library_pb2.HookType.DESCRIPTOR)


def check_execution_order(field: str, value: int) -> int:
    if not 0 <= value <= MAX_EXECUTION_ORDER:
        raise InvalidArgument(field, f"must be between 0 and {MAX_EXECUTION_ORDER}")
    return value


def check_parameter_values(field: str, values: Mapping[str, str], problems: Violations) -> None:
    """Names as in DESIGN §1 ([A-Z_][A-Z0-9_]*, HOOKSHELF_ reserved); values that an
    environment can carry (no NUL) and bounded."""
    for name, value in values.items():
        path = f"{field}[{name}]"
        if not PARAMETER_NAME.match(name):
            problems.add(path, "parameter names must match [A-Z_][A-Z0-9_]*")
        elif name.startswith(RESERVED_PREFIX):
            problems.add(path, f"the {RESERVED_PREFIX} prefix is reserved for system variables")
        elif "\x00" in value:
            problems.add(path, "must not contain NUL characters")
        elif len(value) > MAX_PARAMETER_VALUE_LENGTH:
            problems.add(path, f"must be at most {MAX_PARAMETER_VALUE_LENGTH} characters")


class ParameterValueRequired(FailedPrecondition):
    """A required parameter of the script has no value on the assignment."""

    reason = "PARAMETER_VALUE_REQUIRED"


def missing_required(script: models.Script, values: Mapping[str, str]) -> list[str]:
    """The script's parameters without a default that ``values`` does not give."""
    return [
        name
        for parameter in script.parameters or []
        if (name := parameter.get("name", ""))
        and not parameter.get("has_default")
        and name not in values
    ]


def required_error(
    script: models.Script, missing: Sequence[str], assignment_id: str = ""
) -> ParameterValueRequired:
    """FAILED_PRECONDITION naming the script, the assignment (when there is one yet) and
    the parameters without a value. The request is well formed; the script's declared
    parameters are the state it does not satisfy."""
    where = f"assignment {assignment_id} of script" if assignment_id else "script"
    metadata = {"script_id": script.id, "script_name": script.name, "parameters": ",".join(missing)}
    if assignment_id:
        metadata["assignment_id"] = assignment_id
    return ParameterValueRequired(
        f"{where} {script.name!r} has no value for required parameter(s) "
        f"{', '.join(missing)}: give them in parameter_values",
        metadata=metadata,
    )


def _sealed_values(
    field: str,
    script: models.Script,
    incoming: dict[str, str],
    stored: dict[str, str],
    cipher: secrets.SecretCipher | None,
    assignment_id: str = "",
) -> dict[str, str]:
    """The map to store: secrets encrypted, masks resolved to the stored secrets, and the
    script's required parameters all given."""
    values, unkeepable = secrets.seal(
        incoming, stored, secret_names(script.parameters or []), cipher
    )
    problems = Violations()
    for name in unkeepable:
        problems.add(
            f"{field}[{name}]",
            f"is the mask {secrets.MASK!r} of a secret value, but there is no stored value "
            "to keep: send the value itself",
        )
    problems.raise_if_any()
    missing = missing_required(script, values)
    if missing:
        raise required_error(script, missing, assignment_id)
    return values


# The assignment's optional overrides, as HasField names them.
_OverrideName = Literal["custom_timeout_seconds", "custom_run_on", "on_error"]
_OVERRIDES: tuple[_OverrideName, ...] = ("custom_timeout_seconds", "custom_run_on", "on_error")


def _optional_override(
    message: library_pb2.Assignment, name: _OverrideName, problems: Violations
) -> int | None:
    """The override's value, None when unset (or UNSPECIFIED), recording bad values."""
    if not message.HasField(name):
        return None
    value = getattr(message, name)
    path = f"assignment.{name}"
    try:
        if name == "custom_timeout_seconds":
            return check_timeout(path, value)
        enum = library_pb2.RunOn if name == "custom_run_on" else library_pb2.OnError
        return check_enum(path, value, enum.DESCRIPTOR, allow_unspecified=True) or None
    except InvalidArgument as error:
        problems.items.extend(error.violations)
        return None


# --- reads -------------------------------------------------------------------------------


def _chain_order() -> tuple[Any, ...]:
    A = models.Assignment
    return (A.repository_id, A.hook_type, A.execution_order, A.id)


async def list_for_script(session: AsyncSession, script_id: str) -> list[models.Assignment]:
    """Where a script is assigned: every assignment, by repository, hook type and order."""
    A = models.Assignment
    result = await session.scalars(
        select(A).where(A.script_id == script_id).order_by(*_chain_order())
    )
    return list(result)


async def chain(
    session: AsyncSession, repository_id: str, hook_type: int, *, for_update: bool = False
) -> list[models.Assignment]:
    """One chain in execution order, disabled steps included."""
    A = models.Assignment
    query = (
        select(A)
        .where(A.repository_id == repository_id, A.hook_type == hook_type)
        .order_by(A.execution_order, A.id)
    )
    if for_update:
        query = query.with_for_update()  # PostgreSQL row locks; SQLite locks the database
    return list(await session.scalars(query))


async def get(session: AsyncSession, field: str, assignment_id: str) -> models.Assignment:
    row = await session.get(models.Assignment, check_id(field, assignment_id))
    if row is None:
        raise NotFound(
            f"assignment {assignment_id} not found", metadata={"assignment_id": assignment_id}
        )
    return row


async def script_names(session: AsyncSession, script_ids: Iterable[str]) -> dict[str, str]:
    """``{script_id: name}`` for packing assignments, in one query."""
    return {ident: name for ident, (name, _) in (await script_labels(session, script_ids)).items()}


async def script_labels(
    session: AsyncSession, script_ids: Iterable[str]
) -> dict[str, tuple[str, frozenset[str]]]:
    """``{script_id: (name, names of its SECRET parameters)}`` for packing assignments
    (secret values are masked), in one query."""
    ids = set(script_ids)
    if not ids:
        return {}
    S = models.Script
    rows = await session.execute(select(S.id, S.name, S.parameters).where(S.id.in_(ids)))
    return {
        ident: (name, frozenset(secret_names(stored or [])))
        for ident, name, stored in rows.tuples()
    }


@dataclass(frozen=True)
class AssignmentPage:
    assignments: list[models.Assignment]
    next_page_token: str


async def list_assignments(
    session: AsyncSession,
    *,
    repository_id: str,
    script_id: str,
    hook_type: int,
    page_size: int,
    page_token: str,
) -> AssignmentPage:
    """Assignments by (repository, hook type, execution order, id): a chain filter yields
    the chain in execution order. Keyset-paginated."""
    problems = Violations()
    if repository_id:
        problems.check(check_repository_id, "repository_id", repository_id)
    if script_id:
        problems.check(check_id, "script_id", script_id)
    problems.check(
        check_enum,
        "hook_type",
        hook_type,
        library_pb2.HookType.DESCRIPTOR,
        allow_unspecified=True,
    )
    size = problems.check(page_size_of, page_size)
    problems.raise_if_any()
    assert size is not None  # raise_if_any raised when page_size_of did
    filters = {"repository_id": repository_id, "script_id": script_id, "hook_type": hook_type}
    last = decode_page_token(page_token, filters)

    A = models.Assignment
    query = select(A)
    if repository_id:
        query = query.where(A.repository_id == repository_id)
    if script_id:
        query = query.where(A.script_id == script_id)
    if hook_type:
        query = query.where(A.hook_type == hook_type)
    if last is not None:
        if (
            len(last) != 4
            or not isinstance(last[0], str)
            or not isinstance(last[1], int)
            or not isinstance(last[2], int)
            or not isinstance(last[3], str)
        ):
            raise InvalidArgument("page_token", "is not a token this server issued")
        repo, hook, order, ident = last
        query = query.where(
            or_(
                A.repository_id > repo,
                and_(A.repository_id == repo, A.hook_type > hook),
                and_(A.repository_id == repo, A.hook_type == hook, A.execution_order > order),
                and_(
                    A.repository_id == repo,
                    A.hook_type == hook,
                    A.execution_order == order,
                    A.id > ident,
                ),
            )
        )
    rows = list(await session.scalars(query.order_by(*_chain_order()).limit(size + 1)))
    token = ""
    if len(rows) > size:
        rows = rows[:size]
        tail = rows[-1]
        key = [tail.repository_id, tail.hook_type, tail.execution_order, tail.id]
        token = encode_page_token(key, filters)
    return AssignmentPage(rows, token)


# --- writes ------------------------------------------------------------------------------


async def _script(session: AsyncSession, field: str, script_id: str) -> models.Script:
    script = await session.get(models.Script, check_id(field, script_id))
    if script is None:
        raise NotFound(f"script {script_id} not found", metadata={"script_id": script_id})
    return script


async def assign(
    session: AsyncSession,
    message: library_pb2.Assignment,
    cipher: secrets.SecretCipher | None = None,
) -> models.Assignment:
    """AssignScript: validates everything first, then inserts one assignment. ``cipher``
    encrypts secret values (required when the request has any)."""
    problems = Violations()
    problems.check(check_repository_id, "assignment.repository_id", message.repository_id)
    problems.check(check_hook_type, "assignment.hook_type", message.hook_type)
    problems.check(check_id, "assignment.script_id", message.script_id)
    problems.check(check_execution_order, "assignment.execution_order", message.execution_order)
    overrides = {name: _optional_override(message, name, problems) for name in _OVERRIDES}
    values = dict(message.parameter_values)
    check_parameter_values("assignment.parameter_values", values, problems)
    problems.raise_if_any()

    script = await _script(session, "assignment.script_id", message.script_id)
    values = _sealed_values("assignment.parameter_values", script, values, {}, cipher)

    A = models.Assignment
    duplicate = await session.scalar(
        select(A.id).where(
            A.repository_id == message.repository_id,
            A.script_id == script.id,
            A.hook_type == message.hook_type,
        )
    )
    if duplicate is not None:
        raise _already_assigned(message, script, duplicate)

    order = message.execution_order
    if order == 0:
        order = await _next_order(session, message.repository_id, message.hook_type)
    now = datetime.now(UTC)
    row = models.Assignment(
        id=str(uuid.uuid4()),
        repository_id=message.repository_id,
        script_id=script.id,
        hook_type=message.hook_type,
        execution_order=order,
        enabled=_enabled_of(message),
        parameter_values=values,
        created_at=now,
        updated_at=now,
        **overrides,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as error:  # a concurrent AssignScript of the same triple won
        raise _already_assigned(message, script, "") from error
    return row


def _already_assigned(
    message: library_pb2.Assignment, script: models.Script, existing_id: str
) -> AlreadyExists:
    hook = library_pb2.HookType.Name(message.hook_type)
    return AlreadyExists(
        f"script {script.name!r} is already assigned to repository "
        f"{message.repository_id!r} for {hook}",
        metadata={"assignment_id": existing_id} if existing_id else {},
    )


async def _next_order(session: AsyncSession, repository_id: str, hook_type: int) -> int:
    A = models.Assignment
    highest = await session.scalar(
        select(func.max(A.execution_order)).where(
            A.repository_id == repository_id, A.hook_type == hook_type
        )
    )
    if highest is None:
        return 0
    return min(highest + ORDER_STEP, MAX_EXECUTION_ORDER)


def check_update_mask(paths: Sequence[str], allowed: frozenset[str]) -> list[str]:
    """The mask's paths, all known; an empty mask is an error (nothing would change)."""
    if not paths:
        raise InvalidArgument("update_mask", f"is required (paths: {', '.join(sorted(allowed))})")
    unknown = [p for p in paths if p not in allowed]
    if unknown:
        raise InvalidArgument(
            "update_mask",
            f"unknown or read-only paths {unknown} (allowed: {', '.join(sorted(allowed))})",
        )
    return list(dict.fromkeys(paths))


async def update(
    session: AsyncSession,
    message: library_pb2.Assignment,
    paths: Sequence[str],
    cipher: secrets.SecretCipher | None = None,
) -> models.Assignment:
    """UpdateAssignment: changes exactly the masked fields. An override path whose field
    is unset in the message clears the override (the script's default applies again).
    A secret value sent as the mask keeps the stored one."""
    mask = check_update_mask(paths, UPDATABLE_PATHS)
    problems = Violations()
    problems.check(check_id, "assignment.id", message.id)
    if "execution_order" in mask:
        problems.check(check_execution_order, "assignment.execution_order", message.execution_order)
    overrides = {
        name: _optional_override(message, name, problems) for name in _OVERRIDES if name in mask
    }
    values = dict(message.parameter_values)
    if "parameter_values" in mask:
        check_parameter_values("assignment.parameter_values", values, problems)
    problems.raise_if_any()

    row = await get(session, "assignment.id", message.id)
    if "parameter_values" in mask:
        script = await _script(session, "assignment.script_id", row.script_id)
        row.parameter_values = _sealed_values(
            "assignment.parameter_values",
            script,
            values,
            dict(row.parameter_values or {}),
            cipher,
            row.id,
        )
    if "execution_order" in mask:
        row.execution_order = message.execution_order
    if "enabled" in mask:
        row.enabled = _enabled_of(message)
    for name, value in overrides.items():
        setattr(row, name, value)
    row.updated_at = datetime.now(UTC)
    await session.flush()
    return row


async def seal_secret_values(
    session: AsyncSession, script: models.Script, cipher: secrets.SecretCipher | None
) -> int:
    """Encrypts, on every assignment of ``script``, the values of its SECRET parameters
    that are still stored in the clear: for UpdateScript after a parameter became SECRET,
    so no clear secret stays at rest. Returns how many assignments changed."""
    names = secret_names(script.parameters or [])
    if not names:
        return 0
    changed = 0
    for row in await list_for_script(session, script.id):
        stored = dict(row.parameter_values or {})
        clear = [n for n in names if n in stored and not secrets.is_encrypted(stored[n])]
        if clear:
            if cipher is None:
                raise RuntimeError("no secret key loaded: cannot store a secret value")
            stored.update({n: cipher.encrypt(stored[n]) for n in clear})
            row.parameter_values = stored
            changed += 1
    if changed:
        await session.flush()
    return changed


async def unassign(session: AsyncSession, assignment_id: str) -> None:
    """UnassignScript: removes one assignment; the script and its history stay."""
    row = await get(session, "id", assignment_id)
    await session.delete(row)
    await session.flush()


async def reorder(
    session: AsyncSession, repository_id: str, hook_type: int, assignment_ids: Sequence[str]
) -> list[models.Assignment]:
    """ReorderAssignments: the ids must be exactly the chain (no missing, duplicate or
    foreign id); they get orders 0, 10, 20, ... in the given order, in one transaction."""
    problems = Violations()
    problems.check(check_repository_id, "repository_id", repository_id)
    problems.check(check_hook_type, "hook_type", hook_type)
    wanted: list[str] = []
    for index, raw in enumerate(assignment_ids):
        ident = problems.check(check_id, f"assignment_ids[{index}]", raw)
        if ident is None:
            continue  # recorded in problems: raise_if_any raises below
        if ident in wanted:
            problems.add(f"assignment_ids[{index}]", f"{raw} appears more than once")
        wanted.append(ident)
    problems.raise_if_any()

    rows = await chain(session, repository_id, hook_type, for_update=True)
    by_id = {row.id: row for row in rows}
    foreign = [ident for ident in wanted if ident not in by_id]
    missing = [ident for ident in by_id if ident not in set(wanted)]
    if foreign or missing:
        parts = []
        if foreign:
            parts.append(f"not in this chain: {', '.join(foreign)}")
        if missing:
            parts.append(f"missing from the list: {', '.join(missing)}")
        raise InvalidArgument(
            "assignment_ids", "must be exactly the chain's assignments; " + "; ".join(parts)
        )
    # Gaps of ORDER_STEP leave room to slot a step in; a chain too long for them in the
    # allowed range (over 100,000 steps) is numbered 0, 1, 2, ... instead.
    step = ORDER_STEP if (len(wanted) - 1) * ORDER_STEP <= MAX_EXECUTION_ORDER else 1
    now = datetime.now(UTC)
    for position, ident in enumerate(wanted):
        row = by_id[ident]
        if row.execution_order != position * step:
            row.execution_order = position * step
            row.updated_at = now
    await session.flush()
    return [by_id[ident] for ident in wanted]


def _enabled_of(message: library_pb2.Assignment) -> bool:
    """Unset means enabled: attaching a script is meant to make it run."""
    return message.enabled if message.HasField("enabled") else True
