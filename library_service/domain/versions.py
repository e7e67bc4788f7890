"""Immutable versions of script content, addressed by the sha256 of their UTF-8 bytes.

``script_contents`` holds each distinct content once, keyed by its digest, and is never
deleted from: executions pin digests, so ``GetScriptContent`` must answer for a version
whose script is long gone. ``script_versions`` numbers a script's versions 1..n with their
author. Content that does not change the digest makes no version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from library_service.domain import parameters
from library_service.domain.pagination import decode_page_token, encode_page_token, page_size_of
from library_service.domain.validation import check_digest
from library_service.store import models
from shared.errors import InvalidArgument, NotFound
from shared.hook_policy import MAX_CONTENT_BYTES

DIGEST_PREFIX = "sha256:"


def digest_of(data: bytes) -> str:
    """``sha256:<64 hex>`` of the bytes."""
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def encode_content(field: str, content: str) -> bytes:
    """The UTF-8 bytes of valid script content: not empty, no NUL (no shell can run it and
    PostgreSQL cannot store it), at most 1 MiB."""
    if not content:
        raise InvalidArgument(field, "is required")
    if "\x00" in content:
        raise InvalidArgument(field, "must not contain NUL bytes")
    try:
        data = content.encode("utf-8")
    except UnicodeEncodeError as error:  # lone surrogates: not representable in UTF-8
        raise InvalidArgument(field, "is not valid UTF-8") from error
    if len(data) > MAX_CONTENT_BYTES:
        raise InvalidArgument(
            field, f"is {len(data)} bytes; at most {MAX_CONTENT_BYTES} (1 MiB) are allowed"
        )
    return data


def decode_content(field: str, data: bytes) -> str:
    """Bytes from outside (the mirrored file) as content, held to the API's rules."""
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidArgument(field, "is not valid UTF-8") from error
    encode_content(field, content)
    return content


async def store_content(session: AsyncSession, content: str, now: datetime) -> str:
    """Stores ``content`` under its digest unless it is there already; returns the digest.
    ``ON CONFLICT DO NOTHING`` because two scripts may store the same bytes at once."""
    data = content.encode("utf-8")
    digest = digest_of(data)
    insert = postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert
    await session.execute(
        insert(models.ScriptContent)
        .values(digest=digest, content=content, size_bytes=len(data), created_at=now)
        .on_conflict_do_nothing(index_elements=["digest"])
    )
    return digest


async def add_version(
    session: AsyncSession, script_id: str, digest: str, author: str, now: datetime
) -> models.ScriptVersion:
    """Appends version n+1. Callers hold the script row (locked for update), so numbers
    cannot race; the unique (script_id, number) constraint backs that up."""
    V = models.ScriptVersion
    last = await session.scalar(select(func.max(V.number)).where(V.script_id == script_id))
    version = models.ScriptVersion(
        script_id=script_id, number=(last or 0) + 1, digest=digest, author=author, created_at=now
    )
    session.add(version)
    await session.flush()
    return version


async def change_content(
    session: AsyncSession, script: models.Script, content: str, author: str, now: datetime
) -> bool:
    """Makes ``content`` the script's current version. Returns False, changing nothing,
    when it is the current content already. Parameters follow the content (re-derived,
    explicit declarations kept); the caller records the change (etag)."""
    digest = await store_content(session, content, now)
    if digest == script.current_digest:
        return False
    await add_version(session, script.id, digest, author, now)
    script.current_digest = digest
    script.parameters = parameters.rederive(content, script.parameters or [])
    return True


async def content_of(session: AsyncSession, digest: str) -> models.ScriptContent:
    """The stored content of a digest (any script's, deleted ones too)."""
    check_digest("digest", digest)
    row = await session.get(models.ScriptContent, digest)
    if row is None:
        raise NotFound(f"no content with digest {digest}", metadata={"digest": digest})
    return row


async def digests_of_script(session: AsyncSession, script_id: str) -> set[str]:
    """Every digest the script ever had."""
    V = models.ScriptVersion
    return set(await session.scalars(select(V.digest).where(V.script_id == script_id)))


async def version_counts(session: AsyncSession, script_ids: list[str]) -> dict[str, int]:
    """``{script_id: number of versions}`` in one grouped query."""
    if not script_ids:
        return {}
    V = models.ScriptVersion
    rows = await session.execute(
        select(V.script_id, func.count()).where(V.script_id.in_(script_ids)).group_by(V.script_id)
    )
    return {script_id: int(count) for script_id, count in rows}


@dataclass(frozen=True)
class VersionPage:
    versions: list[tuple[models.ScriptVersion, int]]  # (version, size in bytes)
    next_page_token: str


async def list_versions(
    session: AsyncSession, script_id: str, page_size: int, page_token: str
) -> VersionPage:
    """A script's versions, newest first, keyset-paged by number."""
    size = page_size_of(page_size)
    filters: dict[str, Any] = {"script_id": script_id}
    last = decode_page_token(page_token, filters)
    V, C = models.ScriptVersion, models.ScriptContent
    query = select(V, C.size_bytes).join(C, C.digest == V.digest).where(V.script_id == script_id)
    if last is not None:
        if len(last) != 1 or not isinstance(last[0], int) or isinstance(last[0], bool):
            raise InvalidArgument("page_token", "is not a token this server issued")
        query = query.where(V.number < last[0])
    rows = [
        (version, int(size_bytes))
        for version, size_bytes in await session.execute(
            query.order_by(V.number.desc()).limit(size + 1)
        )
    ]
    token = ""
    if len(rows) > size:
        rows = rows[:size]
        token = encode_page_token([rows[-1][0].number], filters)
    return VersionPage(rows, token)
