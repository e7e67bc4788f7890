"""Etags (AIP-154): a token that changes with every change of a resource, so a client
that sends back the one it read learns (ABORTED) when someone else changed it since."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from shared.errors import Aborted


class Versioned(Protocol):
    etag: str
    updated_at: datetime


def new_etag() -> str:
    """A fresh random etag: unlike a content hash it also changes when a change is undone."""
    return uuid.uuid4().hex


def touch(row: Versioned, now: datetime) -> None:
    """Records that ``row`` changed: a new etag and update time."""
    row.etag = new_etag()
    row.updated_at = now


def check_etag(given: str, row: Versioned, what: str) -> None:
    """ABORTED when the caller sent an etag and it is not the current one; no etag means
    "whatever the current state is" (AIP-154)."""
    if given and given != row.etag:
        raise Aborted(
            f"the etag is stale: the {what} changed since it was read; read it again and retry"
        )
