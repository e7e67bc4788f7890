"""Client side of the error contract: read ErrorInfo and BadRequest back from a failed call."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from shared.grpc_errors import ERROR_DOMAIN


@dataclass
class ErrorDetails:
    """What a failed call said: code, message, reason and the fields at fault."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: dict[str, str] = field(default_factory=dict)

    @property
    def sent_by_hookshelf(self) -> bool:
        """A Hookshelf server sent this error (with its ErrorInfo); otherwise gRPC made it
        on the client's side (no connection, a deadline) or something else answered."""
        return self.domain == ERROR_DOMAIN


def details_of(error: grpc.RpcError) -> ErrorDetails:
    """Decode the google.rpc.Status a Hookshelf server attaches to every error."""
    code = error.code()
    found = ErrorDetails(code=code, message=error.details() or "")
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]  # the RpcError is also the failed grpc.Call
    except (ValueError, AttributeError):
        status = None
    if status is None:
        return found
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            found.reason, found.domain = info.reason, info.domain
            found.metadata = dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.field_violations = {v.field: v.description for v in bad.field_violations}
    return found
