"""A local content-addressed cache of script content: ``<state_dir>/cache/sha256/<hex>``.

Every step runs pinned content named by its digest (``sha256:<hex>``). The bytes are
verified when the cache is filled and again each time they are read for a run, so a
corrupted or edited cache file is refetched, never run. Filled from the library's
GetScriptContent or the content a plan carries; inline content (TestScript,
RunInlineHooks) is put in directly.

A step execs its script from here, through ``runnable``: a symlink named after the script
(``cache/run/<name>.<hex[:16]>``, so ``ps`` and the shell's error messages name the hook)
to the cache file, which is mode 0500. No copy is written per step (see workspace.py for
what file-system updates cost); the content is verified just before, as ever.

Content a plan carries for a chain that runs now (``fill`` without ``durable``) is held in
memory and written when its step is made ready, while the step before it runs: a
cold chain of many scripts then starts without first writing them all.

Durability: a file is always written atomically (temp file, rename), so a reader sees
the whole script or none. It is fsynced only when a promise needs it to outlive a power
cut without the library: the content of a post plan (``ensure(durable=True)``, before the
run row is written) and inline content (``put``: inline and window post scripts exist
nowhere else). Other content (a pre plan's, a refetch) skips the fsync: after a power cut
a torn or missing file fails verification and is fetched again when next needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from executor_service.runner.workspace import safe_file_name
from shared.errors import HookshelfError, NotFound

log = structlog.get_logger("hookshelf.executor.cache")

_temp_names = itertools.count()  # unique temp files, whichever thread writes
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
# Carried content held in memory until its step is made ready; beyond this the oldest is
# dropped (and fetched from the library if its step comes).
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
        self.runnables = root / "cache" / "run"
        self._fetch = fetch
        self._filling: dict[str, asyncio.Lock] = {}
        self._held: dict[str, bytes] = {}  # oldest first
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

    async def fill(self, digest: str, content: bytes, *, durable: bool = False) -> bool:
        """Cache content the library sent along (with a plan) instead of fetching it.
        False, and nothing stored, when it does not match its digest. ``durable``: on
        disk for good before this returns; otherwise held in memory until ``get``."""
        path = self._path(digest)
        if digest_of(content) != digest:
            log.warning("cache.sent_content_does_not_match", digest=digest)
            return False
        if not durable:
            self._hold(digest, content)
        elif self._read_verified(path, digest) is None:
            await asyncio.to_thread(self._write, path, content, durable=True)
        else:
            await asyncio.to_thread(_sync_file, path)
        return True

    def _hold(self, digest: str, content: bytes) -> None:
        if digest in self._held:
            return
        self._held[digest] = content
        self._held_bytes += len(content)
        while self._held_bytes > HELD_BYTES:
            self._held_bytes -= len(self._held.pop(next(iter(self._held))))

    def _take_held(self, digest: str) -> bytes | None:
        content = self._held.pop(digest, None)
        if content is not None:
            self._held_bytes -= len(content)
        return content

    def runnable(self, digest: str, script_name: str) -> Path:
        """The path to exec the cached content of ``digest`` by (after ``get``, which
        verifies it): a symlink named after the script, ``run/<name>.<hex[:16]>``, made
        once per name and digest (one file-system update on a cold cache: no directory
        per digest) and made again if anything else is found in its place."""
        cached = self._path(digest)
        target = f"../sha256/{cached.name}"
        link = self.runnables / f"{safe_file_name(script_name, 'hook')}.{cached.name[:16]}"
        try:
            os.symlink(target, link)
        except FileNotFoundError:  # the first link of this cache
            self.runnables.mkdir(parents=True, exist_ok=True)
            os.symlink(target, link)
        except FileExistsError:
            with contextlib.suppress(OSError):  # not a link: replaced below
                if os.readlink(link) == target:
                    return link
            temp = link.with_name(f".{link.name}.{os.getpid()}.{next(_temp_names)}.tmp")
            os.symlink(target, temp)
            os.replace(temp, link)
        if not os.stat(cached).st_mode & 0o100:
            os.chmod(cached, 0o500)  # written by an executor that did not exec from here
        return link

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
        cached = self._read_verified(path, digest)
        if cached is not None:
            self._take_held(digest)
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
            content = self._take_held(digest)  # verified when it was held
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
        # r-x: steps exec it (through ``runnable``); nobody writes it in place.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o500)
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
