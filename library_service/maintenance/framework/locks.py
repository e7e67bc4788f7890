"""One run of a maintenance script at a time, across processes and replicas.

PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) on a 64-bit hash of the
script name, held on a connection of its own for the whole run. The server drops it when
that session ends, so a killed process cannot leave it behind.

SQLite: `fcntl.flock` on a file next to the database file. The kernel drops it when the
process dies. (SQLite is one machine by definition, so a file lock covers every process
that can open the database.)
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

POLL_SECONDS = 0.2


class RunLock(Protocol):
    """A non-blocking, exclusive lock on one script name."""

    description: str

    async def try_acquire(self) -> bool: ...

    async def release(self) -> None: ...


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_try_advisory_lock(bigint)."""
    digest = hashlib.sha256(f"hookshelf.maintenance:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLock:
    """PostgreSQL session advisory lock on a dedicated (unpooled) connection."""

    def __init__(self, url: str, name: str) -> None:
        self._url = url
        self.key = advisory_key(name)
        self.description = f"PostgreSQL advisory lock {self.key}"
        self._engine: AsyncEngine | None = None
        self._conn: AsyncConnection | None = None

    async def try_acquire(self) -> bool:
        # NullPool: closing the connection really ends the session, so the lock can never
        # linger in a pool. AUTOCOMMIT: no transaction stays open for the length of a run
        # (idle_in_transaction_session_timeout would otherwise end the session).
        self._engine = create_async_engine(self._url, poolclass=NullPool)
        self._conn = await self._engine.connect()
        await self._conn.execution_options(isolation_level="AUTOCOMMIT")
        got = (
            await self._conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
        ).scalar()
        if not got:
            await self._close()
        return bool(got)

    async def release(self) -> None:
        if self._conn is not None:
            try:
                await self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            finally:
                await self._close()

    async def _close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


def lock_file_for(url: str, name: str) -> Path:
    """`<database file>.maintenance-<name>.lock`, next to the database it guards."""
    database = make_url(url).database or ""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    if database in ("", ":memory:"):
        # A private in-memory database is only ever seen by this process.
        return Path(tempfile.gettempdir()) / f"hookshelf-maintenance-{os.getpid()}-{safe}.lock"
    path = Path(database)
    return path.with_name(f"{path.name}.maintenance-{safe}.lock")


class FileLock:
    """flock on a lock file; the holder writes its host and pid into it for people."""

    def __init__(self, url: str, name: str) -> None:
        self.path = lock_file_for(url, name)
        self.description = f"file lock {self.path}"
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
        self._fd = fd
        return True

    async def release(self) -> None:
        if self._fd is not None:
            # The file stays: removing it would race with a process that just opened it.
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_for(url: str, name: str) -> RunLock:
    """The right kind of lock for the database the script runs against."""
    if url.startswith("sqlite"):
        return FileLock(url, name)
    return AdvisoryLock(url, name)


async def acquire(lock: RunLock, wait_seconds: float = 0.0) -> bool:
    """Try once, or keep trying until `wait_seconds` have passed."""
    deadline = time.monotonic() + wait_seconds
    while True:
        if await lock.try_acquire():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_SECONDS)
