"""The one exception the client raises for a failed call."""

from __future__ import annotations

import grpc

from shared.error_details import ErrorDetails, details_of


class HookshelfCallError(Exception):
    """A call to a Hookshelf service failed.

    Carries what the server said (``shared.error_details.ErrorDetails``: code, message,
    ErrorInfo reason, BadRequest field violations) and where the call went.
    """

    def __init__(self, details: ErrorDetails, *, service: str, target: str, method: str) -> None:
        self.details = details
        self.service = service
        self.target = target
        self.method = method
        super().__init__(self.describe())

    @classmethod
    def from_rpc_error(
        cls, error: grpc.RpcError, *, service: str, target: str, method: str
    ) -> HookshelfCallError:
        return cls(details_of(error), service=service, target=target, method=method)

    @property
    def code(self) -> grpc.StatusCode:
        return self.details.code

    @property
    def reason(self) -> str:
        return self.details.reason

    @property
    def field_violations(self) -> dict[str, str]:
        return self.details.field_violations

    def describe(self) -> str:
        """One line a person can act on."""
        code = self.details.code
        if code == grpc.StatusCode.UNAVAILABLE and not self.details.sent_by_hookshelf:
            # gRPC's own: no connection (a Hookshelf server that answered UNAVAILABLE
            # says why, e.g. the executor cannot reach the library: told below, as sent).
            return f"cannot reach the {self.service} at {self.target}: is it running?"
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"the {self.service} at {self.target} did not answer {self.method} in time"
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return f"the {self.service} refused the token (set HOOKSHELF_AUTH_TOKEN)"
        label = code.name.lower().replace("_", " ") if code else "error"
        text = self.details.message or label
        if self.details.field_violations:
            fields = "; ".join(f"{k}: {v}" for k, v in self.details.field_violations.items())
            if fields not in text:
                text = f"{text} ({fields})"
        return f"{label}: {text}"
