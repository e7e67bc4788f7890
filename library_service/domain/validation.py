"""Field checks shared by every library request (the hook-policy checks, enums and
timeouts, are in ``shared.hook_policy``). Each raises InvalidArgument naming the
field path exactly as the request spells it (e.g. ``script.name``)."""

from __future__ import annotations

import re
import uuid

from shared.errors import InvalidArgument

MAX_NAME_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 4096
MAX_CATEGORY_LENGTH = 64
MAX_EXECUTION_ORDER = 1_000_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def check_name(field: str, value: str, *, required: bool = True) -> str:
    """1-255 characters, no control characters, not only whitespace. Returns it stripped."""
    stripped = value.strip()
    if not stripped:
        if required:
            raise InvalidArgument(field, "is required")
        return ""
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidArgument(field, f"must be at most {MAX_NAME_LENGTH} characters")
    if _CONTROL.search(value):
        raise InvalidArgument(field, "must not contain control characters")
    return stripped


def check_text(field: str, value: str, max_length: int) -> str:
    """Free text (descriptions): bounded, no NUL."""
    if len(value) > max_length:
        raise InvalidArgument(field, f"must be at most {max_length} characters")
    if "\x00" in value:
        raise InvalidArgument(field, "must not contain NUL characters")
    return value


def check_id(field: str, value: str) -> str:
    """A server-made id (a UUID). Anything else cannot name a resource."""
    if not value:
        raise InvalidArgument(field, "is required")
    try:
        return str(uuid.UUID(value))
    except ValueError as error:
        raise InvalidArgument(field, "is not a valid id") from error


def check_digest(field: str, value: str) -> str:
    if not _DIGEST.match(value):
        raise InvalidArgument(field, "must be 'sha256:' followed by 64 lowercase hex digits")
    return value
