"""Bounds on the request bytes a server holds: per call, and for all calls at once.

gRPC accepts a request up to its maximum size (4 MiB: message_limits.py) and the server
parses it before any handler can refuse it: a request is then in memory several times
over (the received bytes, the parsed message, its strings, what a refusal's traceback
keeps until the garbage collector runs). Many large requests at once, even ones refused later as too
big, would take the server's memory with them. So, before a request is parsed:

- a request larger than its method can ever need (`RequestLimits`: twice a script's
  maximum content, more for the few methods that carry batches) is RESOURCE_EXHAUSTED;
- its bytes are admitted against a budget of bytes in flight (`RequestBudget`); a
  request that does not fit is RESOURCE_EXHAUSTED too. Ordinary calls (a few KB) always
  fit beside the large ones admitted.

Neither is parsed: its bytes are let go at once.

The admission ends when the call ends (the handler's ``finally``) or, for a call that
never reached its handler (cancelled in between), when its request is collected.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from shared.errors import ResourceExhausted
from shared.hook_policy import MAX_CONTENT_BYTES

# Room for 8 of the largest requests at once, or thousands of ordinary ones.
DEFAULT_REQUEST_BYTES_IN_FLIGHT = 32 * 1024 * 1024
# A request carries at most one script's content and its small fields.
DEFAULT_REQUEST_CEILING = 2 * MAX_CONTENT_BYTES


@dataclass(frozen=True)
class RequestLimits:
    """The largest request each method accepts: ``default`` unless ``by_method`` names it."""

    default: int = DEFAULT_REQUEST_CEILING
    by_method: dict[str, int] = field(default_factory=dict)

    def ceiling(self, method: str) -> int:
        return self.by_method.get(method, self.default)


class RequestBudget:
    """Bytes of requests admitted and not yet done with, up to ``limit``."""

    def __init__(self, limit: int = DEFAULT_REQUEST_BYTES_IN_FLIGHT) -> None:
        self.limit = limit
        self.in_flight = 0
        # Deserializers run on the event loop, finalizers wherever the GC runs.
        self._lock = threading.Lock()

    def admit(self, size: int) -> Ticket | None:
        """A ticket for ``size`` bytes, or None when they do not fit now."""
        with self._lock:
            if self.in_flight + size > self.limit and self.in_flight > 0:
                return None
            self.in_flight += size
        return Ticket(self, size)

    def _give_back(self, size: int) -> None:
        with self._lock:
            self.in_flight -= size


@dataclass(eq=False)
class Ticket:
    """Admitted bytes; given back once, by `release` or when collected."""

    budget: RequestBudget
    size: int
    _finalizer: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._finalizer = weakref.finalize(self, self.budget._give_back, self.size)

    def release(self) -> None:
        self._finalizer()  # a finalize runs its callback at most once


@dataclass(frozen=True)
class Admitted:
    """A parsed request (or an UndecodableRequest) and the ticket for its bytes."""

    request: Any
    ticket: Ticket


@dataclass(frozen=True)
class Refused:
    """Stands in for a request refused before it was parsed, and says why."""

    message: str
    size: int

    def error(self) -> ResourceExhausted:
        return ResourceExhausted(self.message, metadata={"request_bytes": str(self.size)})


def too_large(method: str, size: int, ceiling: int) -> Refused:
    return Refused(f"{method} accepts requests of at most {ceiling} bytes; got {size}", size)


def over_budget(size: int, budget: RequestBudget) -> Refused:
    return Refused(
        f"the server is holding {budget.limit // (1024 * 1024)} MiB of requests already; "
        f"this one ({size} bytes) was not read: retry later, or send less at once",
        size,
    )
