"""Opaque page tokens for keyset pagination (AIP-158).

A token carries the sort key of the last item served and a fingerprint of the query's
filters, so a token used with other filters, or one that was tampered with, is
INVALID_ARGUMENT instead of a silently wrong page. An empty next token is the only end.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from shared.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size_of(requested: int, field: str = "page_size") -> int:
    """0 means the default; negative is an error; above the maximum is capped (AIP-158)."""
    if requested < 0:
        raise InvalidArgument(field, "must not be negative")
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def _fingerprint(filters: dict[str, Any]) -> str:
    canonical = json.dumps(filters, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_page_token(last_key: list[Any], filters: dict[str, Any]) -> str:
    payload = json.dumps({"k": last_key, "f": _fingerprint(filters)}, default=str)
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_page_token(
    token: str, filters: dict[str, Any], field: str = "page_token"
) -> list[Any] | None:
    """The last key of the previous page, or None for the first page."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        key, fingerprint = payload["k"], payload["f"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise InvalidArgument(field, "is not a token this server issued") from error
    if not isinstance(key, list) or fingerprint != _fingerprint(filters):
        raise InvalidArgument(field, "does not belong to this query (filters changed)")
    return key
