"""Hook plans: what the executor runs for one chain, with every setting resolved.

The rules that decide a step's effective settings live here; the defaults they fall back
to and the run_on matching the executor applies are in ``shared.hook_policy``, one
definition for both services (DESIGN §1 "Plans", §2 "Which post hooks run", "Failure policy").

Plans are for executors: they carry secret values decrypted, named in
``secret_parameter_names`` so the executor redacts them from every output. Who gets the
values, and over what channel, is decided in ``plan_delivery``: every other caller gets
them masked.
A plan is FAILED_PRECONDITION when an enabled step misses a required value (its script
gained a parameter after it was assigned) or holds a secret the key cannot decrypt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from library_service.domain import parameters, secrets
from library_service.domain.assignments import (
    ParameterValueRequired,
    check_hook_type,
    check_repository_id,
    missing_required,
    required_error,
)
from library_service.store import models
from shared.errors import InvalidArgument, Violations
from shared.hook_policy import (
    DEFAULT_ON_ERROR,
    DEFAULT_RUN_ON,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_INLINE_CONTENT_BYTES,
)


def effective_run_on(script: models.Script, assignment: models.Assignment) -> int:
    """Assignment override, else the script's default, else SUCCESS."""
    return assignment.custom_run_on or script.default_run_on or DEFAULT_RUN_ON


def effective_on_error(hook_type: int, assignment: models.Assignment) -> int:
    """Assignment override, else ABORT for pre hooks and CONTINUE for post hooks."""
    return assignment.on_error or DEFAULT_ON_ERROR[hook_type]


def effective_timeout(script: models.Script, assignment: models.Assignment) -> int:
    """Assignment override, else the script's default timeout."""
    return (
        assignment.custom_timeout_seconds
        or script.default_timeout_seconds
        or DEFAULT_TIMEOUT_SECONDS
    )


def resolve_parameter_values(
    script: models.Script,
    assignment: models.Assignment,
    cipher: secrets.SecretCipher | None = None,
) -> dict[str, str]:
    """The values a step runs with: the script's parameter defaults overlaid by the
    assignment's values, secrets decrypted (the one place that decrypts).

    SecretUndecryptable (FAILED_PRECONDITION) when ``cipher`` cannot read a stored secret;
    RuntimeError when there is one to read and no cipher (a programming error).
    """
    values = {
        parameter["name"]: str(parameter.get("default_value", ""))
        for parameter in script.parameters or []
        if parameter.get("name") and parameter.get("has_default")
    }
    for name, stored in (assignment.parameter_values or {}).items():
        if secrets.is_encrypted(stored):
            if cipher is None:
                raise RuntimeError("no secret key loaded: cannot decrypt a secret value")
            values[name] = cipher.decrypt(stored, assignment_id=assignment.id, name=name)
        else:
            values[name] = stored
    return values


def secret_parameter_names(
    script: models.Script,
    values: Mapping[str, str],
    stored: Mapping[str, str] | None = None,
) -> list[str]:
    """Names among ``values`` that are secret, sorted: redact these. Secret means declared
    SECRET, or stored encrypted (``stored``: the assignment's stored values), so a value
    kept from when its parameter was SECRET stays redacted."""
    names = parameters.secret_names(script.parameters or []) & values.keys()
    names |= {name for name, value in (stored or {}).items() if secrets.is_encrypted(value)}
    return sorted(names)


@dataclass(frozen=True)
class PlanStep:
    assignment_id: str
    script_id: str
    script_name: str
    digest: str
    timeout_seconds: int
    run_on: int
    on_error: int
    execution_order: int
    parameter_values: dict[str, str] = field(default_factory=dict)
    secret_parameter_names: list[str] = field(default_factory=list)
    # The content of digest when the caller asked for contents and it fit (resolve_plan).
    content: str = ""


# The most content one plan may carry: well inside gRPC's default 4 MiB message, with
# room for the rest of the plan.


def plan_step(
    script: models.Script,
    assignment: models.Assignment,
    cipher: secrets.SecretCipher | None = None,
    content: str = "",
) -> PlanStep:
    """One resolved step, carrying ``content`` (the script's, when the plan carries it).
    ParameterValueRequired (FAILED_PRECONDITION) when a required parameter has no value;
    SecretUndecryptable when a secret cannot be decrypted."""
    missing = missing_required(script, assignment.parameter_values or {})
    if missing:
        raise required_error(script, missing, assignment.id)
    values = resolve_parameter_values(script, assignment, cipher)
    return PlanStep(
        assignment_id=assignment.id,
        script_id=script.id,
        script_name=script.name,
        digest=script.current_digest,
        timeout_seconds=effective_timeout(script, assignment),
        run_on=effective_run_on(script, assignment),
        on_error=effective_on_error(assignment.hook_type, assignment),
        execution_order=assignment.execution_order,
        parameter_values=values,
        secret_parameter_names=secret_parameter_names(script, values, assignment.parameter_values),
        content=content,
    )


class _ChainAssignment(NamedTuple):
    """The columns of an assignment a plan reads (the attributes plan_step uses)."""

    id: str
    hook_type: int
    execution_order: int
    custom_timeout_seconds: int | None
    custom_run_on: int | None
    on_error: int | None
    parameter_values: dict[str, str]


class _ChainScript(NamedTuple):
    """The columns of a script a plan reads (the attributes plan_step uses)."""

    id: str
    name: str
    current_digest: str
    default_timeout_seconds: int
    default_run_on: int
    parameters: list[dict[str, Any]]


# The tables, not the mapped classes: the rows come back as plain tuples.
_A, _S, _C = (
    models.Assignment.__table__.c,
    models.Script.__table__.c,
    models.ScriptContent.__table__.c,
)
_CHAIN_COLUMNS = (
    *(_A[name] for name in _ChainAssignment._fields),
    *(_S[name] for name in _ChainScript._fields),
)
_ASSIGNMENT_END = len(_ChainAssignment._fields)
_SCRIPT_END = len(_CHAIN_COLUMNS)


async def resolve_plan(
    session: AsyncSession,
    repository_id: str,
    hook_type: int,
    cipher: secrets.SecretCipher | None = None,
    inline_content_max_bytes: int = 0,
) -> list[PlanStep]:
    """The enabled steps of one chain in (execution_order, id) order, resolved, secrets
    decrypted with ``cipher``; with ``inline_content_max_bytes``, the steps carry their
    content while the contents carried stay within that many bytes. Any step that cannot run as configured (a required value
    missing, a secret the key cannot read) makes the whole plan FAILED_PRECONDITION:
    running half a chain would be worse than not starting.

    A repository nobody assigned anything to has an empty plan, not an error: the
    library does not own repositories. Digests are read in the same query as the order,
    so a plan never mixes a chain with content from another moment.
    """
    problems = Violations()
    checks: tuple[tuple[Callable[[str, Any], object], str, object], ...] = (
        (check_repository_id, "repository_id", repository_id),
        (check_hook_type, "hook_type", hook_type),
    )
    for check, path, value in checks:
        try:
            check(path, value)
        except InvalidArgument as error:
            problems.items.extend(error.violations)
    if not 0 <= inline_content_max_bytes <= MAX_INLINE_CONTENT_BYTES:
        problems.add(
            "inline_content_max_bytes", f"must be between 0 and {MAX_INLINE_CONTENT_BYTES}"
        )
    problems.raise_if_any()

    # One query, columns rather than ORM objects (a plan is read once and thrown away).
    # With a content budget, the same query carries the content of the steps that fit:
    # the running total of sizes in plan order is within the budget exactly for the
    # first steps that fit (sizes are never negative), as in "as many as fit, in
    # order"; the steps after the first that does not fit carry none.
    order = (_A.execution_order, _A.id)
    query = select(*_CHAIN_COLUMNS).join_from(
        models.Assignment.__table__, models.Script.__table__, _S.id == _A.script_id
    )
    if inline_content_max_bytes:
        carried = func.sum(_C.size_bytes).over(order_by=order, rows=(None, 0))
        query = query.add_columns(
            case((carried <= inline_content_max_bytes, _C.content), else_=None)
        ).join(models.ScriptContent.__table__, _C.digest == _S.current_digest)
    query = query.where(
        _A.repository_id == repository_id, _A.hook_type == hook_type, _A.enabled.is_(True)
    ).order_by(*order)
    rows = (await session.execute(query)).all()
    steps: list[PlanStep] = []
    missing: list[ParameterValueRequired] = []
    for row in rows:
        assignment = _ChainAssignment._make(row[:_ASSIGNMENT_END])
        script = _ChainScript._make(row[_ASSIGNMENT_END:_SCRIPT_END])
        content = (row[_SCRIPT_END] or "") if inline_content_max_bytes else ""
        try:
            steps.append(plan_step(script, assignment, cipher, content))  # type: ignore[arg-type]  # the chain query's named tuples stand in for the models plan_step reads
        except ParameterValueRequired as error:
            missing.append(error)
    if len(missing) == 1:
        raise missing[0]
    if missing:  # every step at fault at once, the first one's ids in the metadata
        raise ParameterValueRequired(
            "; ".join(error.message for error in missing),
            metadata={
                **missing[0].metadata,
                "assignments": ";".join(
                    f"{e.metadata['assignment_id']}:{e.metadata['parameters']}" for e in missing
                ),
            },
        )
    return steps
