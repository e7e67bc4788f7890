"""The one place where domain errors become gRPC statuses.

Every error leaves as a google.rpc.Status carrying an ErrorInfo (reason, domain) and, for
bad input, a BadRequest with the field violations; clients read it back with
`rpc_status.aio.from_call` (see `details_of`). Anything unexpected becomes INTERNAL with a
generic message; the stack goes to the log, never to the client.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from shared.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    HookshelfError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

ERROR_DOMAIN = "hookshelf.dev"

_CODES: dict[type[HookshelfError], int] = {
    InvalidArgument: code_pb2.INVALID_ARGUMENT,
    NotFound: code_pb2.NOT_FOUND,
    AlreadyExists: code_pb2.ALREADY_EXISTS,
    FailedPrecondition: code_pb2.FAILED_PRECONDITION,
    Aborted: code_pb2.ABORTED,
    ResourceExhausted: code_pb2.RESOURCE_EXHAUSTED,
    Unauthenticated: code_pb2.UNAUTHENTICATED,
    PermissionDenied: code_pb2.PERMISSION_DENIED,
    Unavailable: code_pb2.UNAVAILABLE,
}


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]  # any generated message, typed object here
    return packed


def status_for(error: HookshelfError) -> status_pb2.Status:
    """The google.rpc.Status that tells a client what went wrong and where."""
    code = next((c for cls, c in _CODES.items() if isinstance(error, cls)), code_pb2.INTERNAL)
    details = [
        _pack(
            error_details_pb2.ErrorInfo(
                reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
            )
        )
    ]
    if isinstance(error, InvalidArgument):
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
        )
    return status_pb2.Status(code=code, message=error.message, details=details)


def internal_status() -> status_pb2.Status:
    """What a client sees of a bug: a generic message, the details are in the log."""
    return status_pb2.Status(
        code=code_pb2.INTERNAL,
        message="internal error; the server log has the details",
        details=[_pack(error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN))],
    )


def grpc_code_of(status: status_pb2.Status) -> grpc.StatusCode:
    return next(c for c in grpc.StatusCode if c.value[0] == status.code)
