"""Maintenance window RPCs: unpack, call domain.windows, pack."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc

from library_service.api.history import timestamp_of
from library_service.context import LibraryContext
from library_service.domain import windows
from library_service.store import models
from shared.stubs import library_pb2


def window_to_proto(
    row: models.MaintenanceWindow, now: datetime | None = None
) -> library_pb2.MaintenanceWindow:
    """The stored window as the API shows it, next_run_time computed as of ``now``."""
    return library_pb2.MaintenanceWindow(
        id=row.id,
        name=row.name,
        description=row.description,
        pre_script_ids=row.pre_script_ids or [],
        post_script_ids=row.post_script_ids or [],
        cron_expression=row.cron_expression,
        enabled=row.enabled,
        last_run_time=timestamp_of(row.last_run_at),
        next_run_time=timestamp_of(windows.next_run(row, now or datetime.now(UTC))),
        etag=row.etag,
        create_time=timestamp_of(row.created_at),
        update_time=timestamp_of(row.updated_at),
    )


class WindowRpcs:
    """Maintenance window definitions (opening and closing them is the executor's)."""

    def __init__(self, ctx: LibraryContext) -> None:
        self.ctx = ctx

    async def CreateMaintenanceWindow(
        self,
        request: library_pb2.CreateMaintenanceWindowRequest,
        context: grpc.aio.ServicerContext,
    ) -> library_pb2.CreateMaintenanceWindowResponse:
        """Creates a window; the cron expression is validated, next_run_time computed."""
        async with self.ctx.database.transaction() as session:
            row = await windows.create(session, request.window)
        return library_pb2.CreateMaintenanceWindowResponse(window=window_to_proto(row))

    async def GetMaintenanceWindow(
        self, request: library_pb2.GetMaintenanceWindowRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.GetMaintenanceWindowResponse:
        """Returns one window."""
        async with self.ctx.database.transaction() as session:
            row = await windows.get(session, "id", request.id)
        return library_pb2.GetMaintenanceWindowResponse(window=window_to_proto(row))

    async def ListMaintenanceWindows(
        self,
        request: library_pb2.ListMaintenanceWindowsRequest,
        context: grpc.aio.ServicerContext,
    ) -> library_pb2.ListMaintenanceWindowsResponse:
        """Windows ordered by name, paginated."""
        async with self.ctx.database.transaction() as session:
            page = await windows.list_windows(session, request.page_size, request.page_token)
        now = datetime.now(UTC)
        return library_pb2.ListMaintenanceWindowsResponse(
            windows=[window_to_proto(row, now) for row in page.windows],
            next_page_token=page.next_page_token,
        )

    async def UpdateMaintenanceWindow(
        self,
        request: library_pb2.UpdateMaintenanceWindowRequest,
        context: grpc.aio.ServicerContext,
    ) -> library_pb2.UpdateMaintenanceWindowResponse:
        """Changes the masked fields; a stale etag is ABORTED."""
        async with self.ctx.database.transaction() as session:
            row = await windows.update(session, request.window, list(request.update_mask.paths))
        return library_pb2.UpdateMaintenanceWindowResponse(window=window_to_proto(row))

    async def DeleteMaintenanceWindow(
        self,
        request: library_pb2.DeleteMaintenanceWindowRequest,
        context: grpc.aio.ServicerContext,
    ) -> library_pb2.DeleteMaintenanceWindowResponse:
        """Deletes a window."""
        async with self.ctx.database.transaction() as session:
            await windows.delete(session, request.id)
        return library_pb2.DeleteMaintenanceWindowResponse()
