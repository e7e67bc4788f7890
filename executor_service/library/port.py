"""What the executor needs from the library, and the gRPC adapter that provides it.

The domain (chains, runs, recorder) sees only `LibraryPort` and domain errors; this module
is the one place that turns the library client's call errors into them:
UNAVAILABLE / DEADLINE_EXCEEDED (and anything else that says "not now") → Unavailable,
NOT_FOUND → NotFound, INVALID_ARGUMENT → InvalidArgument with the library's fields.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Protocol, TypeVar

import grpc

from shared.client.errors import HookshelfCallError
from shared.client.library import LibraryClient
from shared.client.tls import ClientTls
from shared.errors import FieldViolation, InvalidArgument, NotFound, Unavailable
from shared.stubs import library_pb2 as pb

# Deadlines: plans and content are on the request path of BeginBackup; recording is in
# the background and batches up to a few MB.
PLAN_TIMEOUT = 10.0
CONTENT_TIMEOUT = 20.0
RECORD_TIMEOUT = 30.0

_T = TypeVar("_T")


class LibraryPort(Protocol):
    async def resolve_plan(
        self,
        repository_id: str,
        hook_type: pb.HookType.ValueType,
        *,
        inline_content_max_bytes: int = 0,
    ) -> list[pb.PlanStep]: ...

    async def script_content(self, digest: str) -> bytes: ...

    async def get_script(self, script_id: str) -> pb.Script: ...

    async def get_window(self, window_id: str) -> pb.MaintenanceWindow: ...

    async def record_executions(
        self, executions: Sequence[pb.Execution]
    ) -> pb.RecordExecutionsResponse: ...

    async def reconnected(self) -> None:
        """Return when the library is reachable again after an outage."""
        ...


def domain_error(error: HookshelfCallError) -> Exception:
    """The domain error a failed library call stands for."""
    code = error.code
    message = f"library at {error.target}: {error.method}: {error.details.message or code.name}"
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(message)
    if code == grpc.StatusCode.INVALID_ARGUMENT and error.field_violations:
        first, *rest = error.field_violations.items()
        return InvalidArgument(first[0], first[1], *(FieldViolation(f, d) for f, d in rest))
    return Unavailable(f"{message} ({code.name.lower()})")


class GrpcLibrary:
    """`LibraryPort` over the shared typed library client (deadlines, bearer token)."""

    def __init__(self, target: str, *, auth_token: str = "", tls: ClientTls | None = None) -> None:
        self.client = LibraryClient(target, auth_token=auth_token, tls=tls)

    async def close(self) -> None:
        await self.client.close()

    async def _call(self, call: Awaitable[_T]) -> _T:
        try:
            return await call
        except HookshelfCallError as error:
            raise domain_error(error) from None

    async def resolve_plan(
        self,
        repository_id: str,
        hook_type: pb.HookType.ValueType,
        *,
        inline_content_max_bytes: int = 0,
    ) -> list[pb.PlanStep]:
        """The plan; with ``inline_content_max_bytes``, its first steps carry their content
        (``PlanStep.content``) up to that many bytes (a library without the field sends
        none: the caller fetches what is missing)."""
        request = pb.ResolveHookPlanRequest(
            repository_id=repository_id,
            hook_type=hook_type,
            inline_content_max_bytes=inline_content_max_bytes,
        )
        response = await self._call(self.client.resolve_hook_plan(request, timeout=PLAN_TIMEOUT))
        return list(response.steps)

    async def script_content(self, digest: str) -> bytes:
        request = pb.GetScriptContentRequest(digest=digest)
        response = await self._call(
            self.client.get_script_content(request, timeout=CONTENT_TIMEOUT)
        )
        return response.content.encode("utf-8")

    async def get_script(self, script_id: str) -> pb.Script:
        request = pb.GetScriptRequest(id=script_id)
        response = await self._call(self.client.get_script(request, timeout=PLAN_TIMEOUT))
        return response.script

    async def get_window(self, window_id: str) -> pb.MaintenanceWindow:
        request = pb.GetMaintenanceWindowRequest(id=window_id)
        response = await self._call(
            self.client.get_maintenance_window(request, timeout=PLAN_TIMEOUT)
        )
        return response.window

    async def reconnected(self) -> None:
        await self.client.reconnected()

    async def record_executions(
        self, executions: Sequence[pb.Execution]
    ) -> pb.RecordExecutionsResponse:
        # Not retried here: the recorder owns retries (backoff, journal outbox).
        request = pb.RecordExecutionsRequest(executions=executions)
        return await self._call(
            self.client.record_executions(request, timeout=RECORD_TIMEOUT, retry=False)
        )
