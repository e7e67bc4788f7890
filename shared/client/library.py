"""Typed async client for hookshelf.library.v1.ScriptLibraryService."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc

from shared.client.channel import BaseClient
from shared.client.errors import HookshelfCallError
from shared.stubs import library_pb2 as pb
from shared.stubs import library_pb2_grpc


class LibraryClient(BaseClient):
    """One method per RPC, taking and returning the generated messages.

    Reads, ``RecordExecutions``, ``ReorderAssignments`` and the creates that carry a
    ``request_id`` (filled in when empty) are idempotent and retried on UNAVAILABLE;
    other writes are sent once.
    """

    service = "library"
    stub_class = library_pb2_grpc.ScriptLibraryServiceStub

    # Scripts and versions.
    async def create_script(self, request: pb.CreateScriptRequest) -> pb.CreateScriptResponse:
        if not request.request_id:
            request.request_id = uuid.uuid4().hex  # makes the retry safe
        return await self.unary("CreateScript", request, idempotent=True)

    async def get_script(
        self, request: pb.GetScriptRequest, *, timeout: float | None = None
    ) -> pb.GetScriptResponse:
        return await self.unary("GetScript", request, idempotent=True, timeout=timeout)

    async def list_scripts(self, request: pb.ListScriptsRequest) -> pb.ListScriptsResponse:
        return await self.unary("ListScripts", request, idempotent=True)

    async def update_script(self, request: pb.UpdateScriptRequest) -> pb.UpdateScriptResponse:
        return await self.unary("UpdateScript", request, idempotent=False)

    async def delete_script(self, request: pb.DeleteScriptRequest) -> pb.DeleteScriptResponse:
        return await self.unary("DeleteScript", request, idempotent=False)

    async def list_script_versions(
        self, request: pb.ListScriptVersionsRequest
    ) -> pb.ListScriptVersionsResponse:
        return await self.unary("ListScriptVersions", request, idempotent=True)

    async def get_script_content(
        self, request: pb.GetScriptContentRequest, *, timeout: float | None = None
    ) -> pb.GetScriptContentResponse:
        return await self.unary("GetScriptContent", request, idempotent=True, timeout=timeout)

    # Assignments and plans.
    async def assign_script(self, request: pb.AssignScriptRequest) -> pb.AssignScriptResponse:
        return await self.unary("AssignScript", request, idempotent=False)

    async def list_assignments(
        self, request: pb.ListAssignmentsRequest
    ) -> pb.ListAssignmentsResponse:
        return await self.unary("ListAssignments", request, idempotent=True)

    async def update_assignment(
        self, request: pb.UpdateAssignmentRequest
    ) -> pb.UpdateAssignmentResponse:
        return await self.unary("UpdateAssignment", request, idempotent=False)

    async def unassign_script(self, request: pb.UnassignScriptRequest) -> pb.UnassignScriptResponse:
        return await self.unary("UnassignScript", request, idempotent=False)

    async def reorder_assignments(
        self, request: pb.ReorderAssignmentsRequest
    ) -> pb.ReorderAssignmentsResponse:
        return await self.unary("ReorderAssignments", request, idempotent=True)

    async def resolve_hook_plan(
        self, request: pb.ResolveHookPlanRequest, *, timeout: float | None = None
    ) -> pb.ResolveHookPlanResponse:
        return await self.unary("ResolveHookPlan", request, idempotent=True, timeout=timeout)

    # History.
    async def record_executions(
        self,
        request: pb.RecordExecutionsRequest,
        *,
        timeout: float | None = None,
        retry: bool = True,
    ) -> pb.RecordExecutionsResponse:
        """Idempotent by execution id; ``retry=False`` for a caller that owns its retries
        (the executor's outbox, which backs off between deliveries)."""
        return await self.unary("RecordExecutions", request, idempotent=retry, timeout=timeout)

    async def list_executions(self, request: pb.ListExecutionsRequest) -> pb.ListExecutionsResponse:
        return await self.unary("ListExecutions", request, idempotent=True)

    # Templates.
    async def list_templates(self, request: pb.ListTemplatesRequest) -> pb.ListTemplatesResponse:
        return await self.unary("ListTemplates", request, idempotent=True)

    async def instantiate_template(
        self, request: pb.InstantiateTemplateRequest
    ) -> pb.InstantiateTemplateResponse:
        if not request.request_id:
            request.request_id = uuid.uuid4().hex
        return await self.unary("InstantiateTemplate", request, idempotent=True)

    # Maintenance windows.
    async def create_maintenance_window(
        self, request: pb.CreateMaintenanceWindowRequest
    ) -> pb.CreateMaintenanceWindowResponse:
        return await self.unary("CreateMaintenanceWindow", request, idempotent=False)

    async def get_maintenance_window(
        self, request: pb.GetMaintenanceWindowRequest, *, timeout: float | None = None
    ) -> pb.GetMaintenanceWindowResponse:
        return await self.unary("GetMaintenanceWindow", request, idempotent=True, timeout=timeout)

    async def list_maintenance_windows(
        self, request: pb.ListMaintenanceWindowsRequest
    ) -> pb.ListMaintenanceWindowsResponse:
        return await self.unary("ListMaintenanceWindows", request, idempotent=True)

    async def update_maintenance_window(
        self, request: pb.UpdateMaintenanceWindowRequest
    ) -> pb.UpdateMaintenanceWindowResponse:
        return await self.unary("UpdateMaintenanceWindow", request, idempotent=False)

    async def delete_maintenance_window(
        self, request: pb.DeleteMaintenanceWindowRequest
    ) -> pb.DeleteMaintenanceWindowResponse:
        return await self.unary("DeleteMaintenanceWindow", request, idempotent=False)

    # Conveniences.
    async def find_script(self, ref: str, *, recent_executions: int = 10) -> pb.GetScriptResponse:
        """A script by its name, or by its id when no script has that name."""
        try:
            return await self.get_script(
                pb.GetScriptRequest(name=ref, recent_executions_limit=recent_executions)
            )
        except HookshelfCallError as error:
            if error.code != grpc.StatusCode.NOT_FOUND:
                raise
            try:
                return await self.get_script(
                    pb.GetScriptRequest(id=ref, recent_executions_limit=recent_executions)
                )
            except HookshelfCallError as by_id:
                if by_id.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                    raise error from None  # "no script named X" reads better
                raise

    async def iter_scripts(self, request: pb.ListScriptsRequest) -> AsyncIterator[pb.Script]:
        """Every script matching request, page after page."""
        while True:
            page = await self.list_scripts(request)
            for script in page.scripts:
                yield script
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    async def iter_executions(
        self, request: pb.ListExecutionsRequest, *, limit: int = 0
    ) -> AsyncIterator[pb.Execution]:
        """The activity feed, newest first, up to limit (0: all)."""
        count = 0
        while True:
            page = await self.list_executions(request)
            for execution in page.executions:
                yield execution
                count += 1
                if limit and count >= limit:
                    return
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    async def all_assignments(self, request: pb.ListAssignmentsRequest) -> list[pb.Assignment]:
        found: list[pb.Assignment] = []
        while True:
            page = await self.list_assignments(request)
            found.extend(page.assignments)
            if not page.next_page_token:
                return found
            request.page_token = page.next_page_token

    async def all_versions(self, script_id: str) -> list[pb.ScriptVersion]:
        request = pb.ListScriptVersionsRequest(script_id=script_id, page_size=1000)
        found: list[pb.ScriptVersion] = []
        while True:
            page = await self.list_script_versions(request)
            found.extend(page.versions)
            if not page.next_page_token:
                return found
            request.page_token = page.next_page_token

    async def all_windows(self) -> list[pb.MaintenanceWindow]:
        request = pb.ListMaintenanceWindowsRequest(page_size=1000)
        found: list[pb.MaintenanceWindow] = []
        while True:
            page = await self.list_maintenance_windows(request)
            found.extend(page.windows)
            if not page.next_page_token:
                return found
            request.page_token = page.next_page_token
