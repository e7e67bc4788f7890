"""A local content-addressed cache of script content: ``<state_dir>/cache/sha256/<hex>``.

Every step runs pinned content named by its digest (``sha256:<hex>``). The bytes are
verified when the cache is filled and again each time they are read from disk for a run,
so a corrupted or edited cache file is refetched, never run (bytes held in memory are
verified once, when they are held: nothing can edit them). Filled from the library's
GetScriptContent or the content a plan carries; inline content (TestScript,
RunInlineHooks) is put in directly.

A step's script is written from the verified bytes ``get`` returns into its workspace's
script slot (workspace.py), never exec'd from here.

Content a plan carries for a chain that runs now (``fill`` without ``durable``) is held in
memory, verified, and never written here: a file costs a new inode, which on a journalling
file system can cost as much CPU as a trivial hook's whole run (see workspace.py). What is
held is kept, most recently used last, up to HELD_BYTES: chains of other runs that carry
the same script find it there too, and beyond that bound the least recently used goes
(fetched again from the library, and then cached on disk, if a step still needs it).

Durability: a file is always written atomically (temp file, rename), so a reader sees
the whole script or none. It is fsynced only when a promise needs it to outlive a power
cut without the library: the content of a post plan (``ensure(durable=True)``, before the
run row is written) and inline content (``put``: inline and window post scripts exist
nowhere else). Other content written here (fetched for a pre plan, or fetched again)
skips the fsync: after a power cut a torn or missing file fails verification and is
fetched again when next needed.
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

from shared.errors import HookshelfError, NotFound

log = structlog.get_logger("hookshelf.executor.cache")

_temp_names = itertools.count()  # unique temp files, whichever thread writes
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
# Carried content held in memory; beyond this the least recently used is dropped (and
# fetched from the library if a step still needs it).
HELD_BYTES = 64 * 1024 * 1024

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
        self._held: dict[str, bytes] = {}  # least recently used first
        self._held_bytes = 0

    def _path(self, digest: str) -> Path:
        match = _DIGEST.match(digest)
        if match is None:
            raise ContentUnavailable(f"not a sha256 digest: {digest!r}")
        return self.root / match.group(1)

    def put(self, content: bytes) -> str:
        """Store content (inline scripts) durably and return its digest."""
        digest = digest_of(content)
        path = self._path(digest)
        if not self._read_verified(path, digest):
            self._write(path, content, durable=True)
        else:
            _sync_file(path)  # it may have been written without a sync
        return digest

    async def fill(
        self, digest: str, content: bytes, *, durable: bool = False, on_disk: bool = False
    ) -> bool:
        """Cache content the library sent along (with a plan) instead of fetching it.
        False, and nothing stored, when it does not match its digest. ``durable``: on
        disk for good before this returns; otherwise held in memory, and with ``on_disk``
        also written (unsynced) when no file holds it yet: a kept plan
        (runs/plans.py) must find it after a restart. Only a digest seen for the first
        time costs a file; one already there costs a stat."""
        path = self._path(digest)
        if digest_of(content) != digest:
            log.warning("cache.sent_content_does_not_match", digest=digest)
            return False
        if not durable:
            self._hold(digest, content)
            if on_disk and not path.exists():
                await asyncio.to_thread(self._write, path, content, durable=False)
        elif self._read_verified(path, digest) is None:
            await asyncio.to_thread(self._write, path, content, durable=True)
        else:
            await asyncio.to_thread(_sync_file, path)
        return True

    def _hold(self, digest: str, content: bytes) -> None:
        if digest in self._held:
            self._held[digest] = self._held.pop(digest)  # most recently used: last
            return
        self._held[digest] = content
        self._held_bytes += len(content)
        while self._held_bytes > HELD_BYTES:
            self._held_bytes -= len(self._held.pop(next(iter(self._held))))

    def _held_copy(self, digest: str) -> bytes | None:
        content = self._held.get(digest)
        if content is not None:
            self._held[digest] = self._held.pop(digest)  # most recently used: last
        return content

    async def ensure(self, digest: str, *, durable: bool = False) -> None:
        """Make sure the digest is cached, fetching it when it is not (prefetch at
        BeginBackup). ``durable``: also on disk for good before this returns, so a post
        chain owed after a power cut can run while the library is away."""
        await self.get(digest, durable=durable)

    async def get(self, digest: str, *, durable: bool = False) -> bytes:
        """The verified bytes of a digest; fetched from the library if missing or bad.

        Raises ContentUnavailable when the library does not have it, and Unavailable when
        the library cannot be reached.
        """
        path = self._path(digest)
        if not durable:
            held = self._held_copy(digest)  # verified when it was held
            if held is not None:
                return held
        cached = self._read_verified(path, digest)
        if cached is not None:
            if durable:
                # Cached, but perhaps written without a sync (by a pre plan, or a process
                # before a restart). A clean file's fsync costs next to nothing.
                await asyncio.to_thread(_sync_file, path)
            return cached
        lock = self._filling.setdefault(digest, asyncio.Lock())
        async with lock:
            cached = self._read_verified(path, digest)
            if cached is not None:
                if durable:
                    await asyncio.to_thread(_sync_file, path)
                return cached
            content = self._held_copy(digest)  # verified when it was held
            if content is None:
                content = await self._fetch_verified(digest)
            # In a thread: the file system's metadata updates (and the fsync) do not hold
            # up the event loop, and concurrent fills (resolve_plans) share its commits.
            await asyncio.to_thread(self._write, path, content, durable=durable)
            return content

    async def _fetch_verified(self, digest: str) -> bytes:
        try:
            content = await self._fetch(digest)
        except NotFound as error:
            raise ContentUnavailable(
                f"the library has no content for {digest}: {error.message}"
            ) from error
        if digest_of(content) != digest:
            raise ContentUnavailable(
                f"the library sent content for {digest} that does not match it"
            )
        return content

    def _read_verified(self, path: Path, digest: str) -> bytes | None:
        try:
            content = _read(path)
        except FileNotFoundError:
            return None
        if digest_of(content) == digest:
            return content
        log.warning("cache.corrupt_entry_dropped", digest=digest, path=str(path))
        path.unlink(missing_ok=True)
        return None

    def _write(self, path: Path, content: bytes, *, durable: bool) -> None:
        """Atomically (temp file, rename): a reader never sees half a script. ``durable``
        fsyncs the bytes before the rename, so the name never points at unsynced data."""
        self.root.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{next(_temp_names)}.tmp")
        # Read-only: nobody writes a cache file in place (steps run copies of it).
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o400)
        with open(fd, "wb") as file:
            file.write(content)
            file.flush()
            if durable:
                os.fsync(file.fileno())
        os.replace(temp, path)


def _read(path: Path) -> bytes:
    # os-level, not Path.read_bytes: read once per step, and io's buffered file object
    # costs more than reading a script takes.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        pieces = []
        while piece := os.read(fd, 1 << 20):
            pieces.append(piece)
        return b"".join(pieces)
    finally:
        os.close(fd)


def _sync_file(path: Path) -> None:
    """fsync a cached file; one that vanished meanwhile is fetched again when needed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
