"""A local content-addressed cache of script content: ``<state_dir>/cache/sha256/<hex>``.

Every step runs pinned content named by its digest (``sha256:<hex>``). The bytes are
verified when the cache is filled and again each time they are read for a run, so a
corrupted or edited cache file is refetched, never run. Filled from the library's
GetScriptContent; inline content (TestScript, RunInlineHooks) is put in directly.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from shared.errors import HookshelfError, NotFound, Unavailable

log = structlog.get_logger("hookshelf.executor.cache")

_temp_names = itertools.count()  # unique temp files, whichever thread writes
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")

# Fetches the bytes of a digest from the library (raises NotFound / Unavailable).
Fetch = Callable[[str], Awaitable[bytes]]


class ContentUnavailable(HookshelfError):
    """The content of a digest is neither in the cache nor to be had from the library."""

    reason = "CONTENT_UNAVAILABLE"


def digest_of(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


class ContentCache:
    """Content by digest, verified on fill and before every use."""

    def __init__(self, root: Path, fetch: Fetch) -> None:
        self.root = root / "cache" / "sha256"
        self._fetch = fetch
        self._filling: dict[str, asyncio.Lock] = {}

    def _path(self, digest: str) -> Path:
        match = _DIGEST.match(digest)
        if match is None:
            raise ContentUnavailable(f"not a sha256 digest: {digest!r}")
        return self.root / match.group(1)

    def put(self, content: bytes) -> str:
        """Store content (inline scripts) and return its digest."""
        digest = digest_of(content)
        path = self._path(digest)
        if not self._read_verified(path, digest):
            self._write(path, content)
        return digest

    async def ensure(self, digest: str) -> None:
        """Make sure the digest is cached, fetching it when it is not (prefetch at
        BeginBackup, so the post chain can run while the library is away)."""
        await self.get(digest)

    async def get(self, digest: str) -> bytes:
        """The verified bytes of a digest; fetched from the library if missing or bad.

        Raises ContentUnavailable when the library does not have it, and Unavailable when
        the library cannot be reached.
        """
        path = self._path(digest)
        cached = self._read_verified(path, digest)
        if cached is not None:
            return cached
        lock = self._filling.setdefault(digest, asyncio.Lock())
        async with lock:
            cached = self._read_verified(path, digest)
            if cached is not None:
                return cached
            try:
                content = await self._fetch(digest)
            except NotFound as error:
                raise ContentUnavailable(
                    f"the library has no content for {digest}: {error.message}"
                ) from error
            except Unavailable:
                raise
            if digest_of(content) != digest:
                raise ContentUnavailable(
                    f"the library sent content for {digest} that does not match it"
                )
            # In a thread: the fsync does not hold up the event loop, and concurrent fills
            # (resolve_plans) share the file system's commits.
            await asyncio.to_thread(self._write, path, content)
            return content

    def _read_verified(self, path: Path, digest: str) -> bytes | None:
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            return None
        if digest_of(content) == digest:
            return content
        log.warning("cache.corrupt_entry_dropped", digest=digest, path=str(path))
        path.unlink(missing_ok=True)
        return None

    def _write(self, path: Path, content: bytes) -> None:
        """Atomically (temp file, fsync, rename): a crash never leaves half a script."""
        self.root.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{next(_temp_names)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
