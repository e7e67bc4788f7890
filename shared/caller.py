"""The caller of the current RPC, as a plain value the servicers can hand to the domain.

The interceptor (shared/grpc_interceptor.py) identifies the caller once per call and sets
it here; a servicer reads it with ``current_caller()`` and passes what the domain needs
(e.g. whether a plan may carry secrets) as plain arguments, so domain code never sees
gRPC. A context variable, because the handler runs in the interceptor's task and context.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """Who is calling and how they are connected."""

    role: str
    # TLS, a unix socket or loopback: nobody on the network can read the answer.
    secure_channel: bool
    # Whether this caller's plans carry decrypted secret values (roles.receives_secrets).
    receives_secrets: bool


_current: ContextVar[Caller] = ContextVar("hookshelf_caller")


def current_caller() -> Caller:
    """The caller of the RPC being handled; LookupError outside one (a programming error)."""
    return _current.get()


def set_caller(caller: Caller) -> Token[Caller]:
    return _current.set(caller)
