"""Assignment and plan RPCs: unpack, call domain.assignments / domain.plans, pack."""

from __future__ import annotations

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from library_service.api.history import timestamp_of
from library_service.context import LibraryContext
from library_service.domain import assignments, plan_delivery, plans, secrets
from library_service.store import models
from shared.caller import current_caller
from shared.stubs import library_pb2


def assignment_to_proto(
    row: models.Assignment,
    script_name: str,
    secret_names: frozenset[str] = frozenset(),
) -> library_pb2.Assignment:
    """The stored assignment as the API shows it; unset overrides stay unset.

    Secret values are never returned: values of the ``secret_names`` parameters (the
    script's SECRET ones) and every value stored encrypted show as ``secrets.MASK``.
    """
    message = library_pb2.Assignment(
        id=row.id,
        repository_id=row.repository_id,
        script_id=row.script_id,
        script_name=script_name,
        hook_type=row.hook_type,  # type: ignore[arg-type]  # a stored row keeps the enum as a plain int; the stub wants its ValueType
        execution_order=row.execution_order,
        enabled=row.enabled,
        parameter_values=secrets.masked(row.parameter_values or {}, secret_names),
        create_time=timestamp_of(row.created_at),
        update_time=timestamp_of(row.updated_at),
    )
    if row.custom_timeout_seconds is not None:
        message.custom_timeout_seconds = row.custom_timeout_seconds
    if row.custom_run_on is not None:
        message.custom_run_on = row.custom_run_on  # type: ignore[assignment]  # a stored row keeps the enum as a plain int; the stub wants its ValueType
    if row.on_error is not None:
        message.on_error = row.on_error  # type: ignore[assignment]  # a stored row keeps the enum as a plain int; the stub wants its ValueType
    return message


def plan_step_to_proto(step: plans.PlanStep) -> library_pb2.PlanStep:
    return library_pb2.PlanStep(
        assignment_id=step.assignment_id,
        script_id=step.script_id,
        script_name=step.script_name,
        digest=step.digest,
        timeout_seconds=step.timeout_seconds,
        run_on=step.run_on,  # type: ignore[arg-type]  # a stored row keeps the enum as a plain int; the stub wants its ValueType
        on_error=step.on_error,  # type: ignore[arg-type]  # a stored row keeps the enum as a plain int; the stub wants its ValueType
        parameter_values=step.parameter_values,
        secret_parameter_names=step.secret_parameter_names,
        execution_order=step.execution_order,
        content=step.content,
    )


async def _pack(
    session: AsyncSession, rows: list[models.Assignment]
) -> list[library_pb2.Assignment]:
    """Assignments as protos, their script names and secret parameters read in one query."""
    labels = await assignments.script_labels(session, (row.script_id for row in rows))
    return [assignment_to_proto(row, *labels.get(row.script_id, ("", frozenset()))) for row in rows]


class AssignmentRpcs:
    """Where scripts run: chains of assignments per repository and hook type, and the
    plans resolved from them."""

    def __init__(self, ctx: LibraryContext) -> None:
        self.ctx = ctx

    async def AssignScript(
        self, request: library_pb2.AssignScriptRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.AssignScriptResponse:
        """Attaches a script to a chain; ALREADY_EXISTS for the same triple twice."""
        async with self.ctx.database.transaction() as session:
            row = await assignments.assign(session, request.assignment, self.ctx.cipher)
            (packed,) = await _pack(session, [row])
        return library_pb2.AssignScriptResponse(assignment=packed)

    async def ListAssignments(
        self, request: library_pb2.ListAssignmentsRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.ListAssignmentsResponse:
        """Assignments by repository, hook type and execution order."""
        async with self.ctx.database.transaction() as session:
            page = await assignments.list_assignments(
                session,
                repository_id=request.repository_id,
                script_id=request.script_id,
                hook_type=request.hook_type,
                page_size=request.page_size,
                page_token=request.page_token,
            )
            packed = await _pack(session, page.assignments)
        return library_pb2.ListAssignmentsResponse(
            assignments=packed, next_page_token=page.next_page_token
        )

    async def UpdateAssignment(
        self, request: library_pb2.UpdateAssignmentRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.UpdateAssignmentResponse:
        """Changes the masked fields; a masked but unset override is cleared."""
        async with self.ctx.database.transaction() as session:
            row = await assignments.update(
                session, request.assignment, list(request.update_mask.paths), self.ctx.cipher
            )
            (packed,) = await _pack(session, [row])
        return library_pb2.UpdateAssignmentResponse(assignment=packed)

    async def UnassignScript(
        self, request: library_pb2.UnassignScriptRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.UnassignScriptResponse:
        """Removes one assignment."""
        async with self.ctx.database.transaction() as session:
            await assignments.unassign(session, request.id)
        return library_pb2.UnassignScriptResponse()

    async def ReorderAssignments(
        self, request: library_pb2.ReorderAssignmentsRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.ReorderAssignmentsResponse:
        """Puts a whole chain in the given order in one transaction; returns the chain."""
        async with self.ctx.database.transaction() as session:
            rows = await assignments.reorder(
                session, request.repository_id, request.hook_type, list(request.assignment_ids)
            )
            packed = await _pack(session, rows)
        return library_pb2.ReorderAssignmentsResponse(assignments=packed)

    async def ResolveHookPlan(
        self, request: library_pb2.ResolveHookPlanRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.ResolveHookPlanResponse:
        """The enabled steps of a chain with their effective settings; secrets decrypted
        for the executor role over a secure channel, masked for everyone else
        (domain/plan_delivery.py). One read: on SQLite it does not wait for a writer's
        lock (every BeginBackup asks for two)."""
        caller = current_caller()
        audience = plan_delivery.PlanAudience(
            receives_secrets=caller.receives_secrets, secure_channel=caller.secure_channel
        )
        async with self.ctx.database.reading() as session:
            steps = await plan_delivery.resolve_plan_for(
                audience,
                session,
                request.repository_id,
                request.hook_type,
                self.ctx.cipher,
                inline_content_max_bytes=request.inline_content_max_bytes,
            )
        return library_pb2.ResolveHookPlanResponse(
            repository_id=request.repository_id,
            hook_type=request.hook_type,
            steps=[plan_step_to_proto(step) for step in steps],
        )
