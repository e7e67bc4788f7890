"""Typed domain errors. The domain raises these; one place (shared.grpc_errors) maps them
to gRPC status codes, so domain code never imports grpc."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


class HookshelfError(Exception):
    """Base of every error a request may legitimately cause."""

    reason = "ERROR"

    def __init__(self, message: str, *, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata or {}


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request, named by its path (e.g. ``script.name``)."""

    field: str
    description: str


class InvalidArgument(HookshelfError):
    """Bad input: names the fields at fault."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, description: str, *more: FieldViolation) -> None:
        super().__init__(f"{field}: {description}")
        self.violations: list[FieldViolation] = [FieldViolation(field, description), *more]


class NotFound(HookshelfError):
    reason = "NOT_FOUND"


class AlreadyExists(HookshelfError):
    reason = "ALREADY_EXISTS"


class FailedPrecondition(HookshelfError):
    """The request is valid but the system's state does not allow it now."""

    reason = "FAILED_PRECONDITION"


class Aborted(HookshelfError):
    """A concurrent change won (stale etag): read again and retry."""

    reason = "ABORTED"


class ResourceExhausted(HookshelfError):
    reason = "RESOURCE_EXHAUSTED"


class Unauthenticated(HookshelfError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(HookshelfError):
    """The caller is known, but its role may not do this (shared/roles.py)."""

    reason = "ROLE_NOT_ALLOWED"


class Unavailable(HookshelfError):
    """A dependency (the library, the database) cannot be reached now; retry later."""

    reason = "UNAVAILABLE"


@dataclass
class Violations:
    """Collects field violations so a request reports all its bad fields at once."""

    items: list[FieldViolation] = field(default_factory=list)

    def add(self, field_path: str, description: str) -> None:
        self.items.append(FieldViolation(field_path, description))

    def check(self, check: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """Run one check, collecting its violations instead of raising, so a request
        reports all its bad fields at once. Returns the check's result, or None."""
        try:
            return check(*args, **kwargs)
        except InvalidArgument as error:
            self.items.extend(error.violations)
            return None

    def raise_if_any(self) -> None:
        if self.items:
            first, *rest = self.items
            raise InvalidArgument(first.field, first.description, *rest)
