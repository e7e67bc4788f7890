"""Per-call concerns for every RPC of both services, in one interceptor:
request id (bound to the log context and echoed in trailing metadata), who is calling and
whether their role may call this method (shared/identity.py, shared/roles.py; the caller
is then available to servicers through shared/caller.py), metrics, and turning domain
errors into statuses (shared.grpc_errors).

Servicers stay thin: they raise domain errors and never build a status themselves.
"""

from __future__ import annotations

import inspect
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status
from prometheus_client import Counter, Histogram

from shared import roles
from shared.caller import set_caller
from shared.credentials import OPEN, Credentials
from shared.errors import HookshelfError, PermissionDenied
from shared.grpc_errors import internal_status, status_for
from shared.identity import AUTHORIZATION_KEY, identify_caller

log = structlog.get_logger("hookshelf.rpc")

REQUEST_ID_KEY = "x-request-id"

RPC_TOTAL = Counter(
    "hookshelf_rpc_requests_total", "RPCs handled, by method and status code", ["method", "code"]
)
RPC_SECONDS = Histogram(
    "hookshelf_rpc_duration_seconds", "RPC handling time (whole stream for streams)", ["method"]
)


# A request id is echoed back in trailing metadata and written to every log line: only
# visible ASCII, bounded. Anything else (non-ASCII, control characters, a novel) would make
# grpc refuse the trailing metadata (INTERNAL) or bloat the logs; it is replaced by an id
# of our own, which the trailers then tell the client.
_REQUEST_ID = re.compile(r"[!-~]{1,128}")


def request_id_of(presented: str | None) -> str:
    """The client's request id when it is one we can echo safely, else a new one."""
    if presented and _REQUEST_ID.fullmatch(presented):
        return presented
    return uuid.uuid4().hex


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


def _authorization(context: grpc.aio.ServicerContext) -> str | bytes | None:
    """The authorization header as sent, even when it is not text (it then matches no
    token: UNAUTHENTICATED, never a crash)."""
    for key, value in context.invocation_metadata() or ():
        if key == AUTHORIZATION_KEY:
            return value
    return None


class _Call:
    """Everything that happens around one call: ids, log context, auth, metrics, errors."""

    def __init__(self, method: str, credentials: Credentials) -> None:
        self.method = method
        self.credentials = credentials
        self.started = time.monotonic()
        self.code = "OK"
        self.request_id = ""

    def enter(self, context: grpc.aio.ServicerContext) -> None:
        metadata = _metadata(context)
        self.request_id = request_id_of(metadata.get(REQUEST_ID_KEY))
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=self.request_id, method=self.method)
        context.set_trailing_metadata(((REQUEST_ID_KEY, self.request_id),))
        if roles.is_open(self.method):
            return
        caller = identify_caller(
            self.credentials,
            authorization=_authorization(context),
            peer=context.peer() or "",
            auth_context=context.auth_context() or {},
        )
        structlog.contextvars.bind_contextvars(role=caller.role)
        if not roles.allowed(caller.role, self.method):
            raise PermissionDenied(
                f"role {caller.role} may not call {self.method}",
                metadata={"role": caller.role, "method": self.method},
            )
        set_caller(caller)

    async def fail(self, context: grpc.aio.ServicerContext, error: BaseException) -> None:
        if isinstance(error, HookshelfError):
            status = status_for(error)
            log.info("rpc.rejected", reason=error.reason, error=error.message)
        elif isinstance(error, NotImplementedError):
            status = status_pb2.Status(code=code_pb2.UNIMPLEMENTED, message="not implemented")
        else:
            status = internal_status()
            log.error("rpc.internal_error", exc_info=error)
        self.code = str(status.code)
        rich = rpc_status.to_status(status)
        # abort_with_status would replace the trailing metadata, dropping the request id
        # exactly when a client needs it to find the call in the server's log.
        trailing = (*rich.trailing_metadata, (REQUEST_ID_KEY, self.request_id))
        await context.abort(rich.code, rich.details, trailing_metadata=trailing)

    def leave(self) -> None:
        RPC_TOTAL.labels(self.method, self.code).inc()
        RPC_SECONDS.labels(self.method).observe(time.monotonic() - self.started)


Handler = Callable[..., Any]


class HookshelfInterceptor(grpc.aio.ServerInterceptor):
    """Wraps unary and server-streaming handlers (the only kinds Hookshelf has)."""

    def __init__(self, credentials: Credentials = OPEN) -> None:
        self.credentials = credentials

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _wrap_unary(self, method: str, inner: Handler) -> Handler:
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            call = _Call(method, self.credentials)
            try:
                call.enter(context)
                return await inner(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as error:  # noqa: BLE001 - mapped, never leaked
                await call.fail(context, error)
            finally:
                call.leave()

        return unary

    def _wrap_stream(self, method: str, inner: Handler) -> Handler:
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            call = _Call(method, self.credentials)
            try:
                call.enter(context)
                result = inner(request, context)
                if inspect.isasyncgen(result):
                    async for item in result:
                        yield item
                else:
                    await result
            except grpc.aio.AbortError:
                raise
            except Exception as error:  # noqa: BLE001 - mapped, never leaked
                await call.fail(context, error)
            finally:
                call.leave()

        return stream
