"""A cheap, exact answer to "has anything been committed to the database since?".

The read cache (store/read_cache.py) keeps answers tagged with the stamp observed before
they were read, and serves one again only while the stamp is unchanged. For that to be
safe the stamp must change whenever *any* writer commits: this process through any
pooled connection, the maintenance commands run as other processes, other library
replicas, someone with psql. Both backends can tell without our writers' help:

- SQLite: ``PRAGMA data_version`` on a connection of our own changes whenever another
  connection, in this process or any other, has committed. It reads the WAL index in
  shared memory, a few microseconds, so it runs inline in the event loop.
- PostgreSQL: the current snapshot (``xmin:xmax:xip``). Equal snapshots mean no
  transaction completed in between: one that was running has left ``xip``, one that
  started later has moved ``xmax``. Read-only transactions take no transaction id and do
  not move it; writes to other databases of the cluster do, which only costs a miss.
  It is one round trip, so concurrent readers share it (see PostgresSnapshotStamp).

``current()`` returns None when it cannot tell (the stamp connection is lost, an
in-memory database): the caller must then read from the database.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any, Protocol

import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = structlog.get_logger("hookshelf.library.cache")


class ChangeStamp(Protocol):
    async def current(self) -> str | None:
        """A value observed after this call began; equal values mean no commit between."""
        ...

    async def close(self) -> None: ...


class SqliteDataVersion:
    """PRAGMA data_version on a private connection to the library's file (it never
    writes; it is not opened read-only because a read-only WAL reader needs the -shm
    file to exist already)."""

    def __init__(self, path: str) -> None:
        # Autocommit, so that the pragma never runs inside a read transaction (inside one
        # it would keep answering from that transaction's snapshot).
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    async def current(self) -> str | None:
        try:
            (version,) = self._connection.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            log.warning("cache.stamp_unavailable", exc_info=True)
            return None
        return str(version)

    async def close(self) -> None:
        self._connection.close()


class PostgresSnapshotStamp:
    """pg_current_snapshot() on a connection of its own, one query for many readers.

    A reader may only use a snapshot taken after it arrived (an older one could predate
    a commit it must see), so readers arriving while a query is out wait for the next
    one, and a single query then answers all of them: under load the cost per read is a
    fraction of a round trip.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._driver: Any = None  # asyncpg.Connection of _connection
        self._waiting: asyncio.Future[str | None] | None = None
        self._querying: asyncio.Task[None] | None = None
        self._closed = False

    async def current(self) -> str | None:
        if self._closed:
            return None
        if self._waiting is None:
            self._waiting = asyncio.get_running_loop().create_future()
        waiting = self._waiting
        if self._querying is None:
            self._querying = asyncio.create_task(self._answer_waiting())
        # Shielded: a cancelled reader must not cancel the answer others wait for.
        return await asyncio.shield(waiting)

    async def _answer_waiting(self) -> None:
        try:
            while self._waiting is not None:
                # One turn of the loop first: calls that arrived in the same batch of
                # network events join this query instead of queueing for the next.
                await asyncio.sleep(0)
                waiting, self._waiting = self._waiting, None
                snapshot = await self._snapshot()
                if not waiting.done():
                    waiting.set_result(snapshot)
        finally:
            self._querying = None

    async def _snapshot(self) -> str | None:
        try:
            if self._driver is None:
                self._connection = await self._engine.connect()
                # asyncpg's own connection, kept: SQLAlchemy's layers cost more per call
                # than the query, and this connection only ever runs this one statement.
                self._driver = (await self._connection.get_raw_connection()).driver_connection
            return str(await self._driver.fetchval("SELECT pg_current_snapshot()::text"))
        except Exception:  # any failure means "cannot tell": read through
            log.warning("cache.stamp_unavailable", exc_info=True)
            await self._drop_connection()
            return None

    async def _drop_connection(self) -> None:
        self._driver = None
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await connection.invalidate()
                await connection.close()
            except Exception:  # it is broken already; a new one comes next
                log.debug("cache.stamp_close_failed", exc_info=True)

    async def close(self) -> None:
        self._closed = True
        if self._querying is not None:
            await asyncio.gather(self._querying, return_exceptions=True)
        if self._connection is not None:
            await self._connection.close()
            self._connection, self._driver = None, None


class NoStamp:
    """For databases another connection cannot watch (in-memory SQLite): never cache."""

    async def current(self) -> str | None:
        return None

    async def close(self) -> None:
        return None


def change_stamp_for(url: str, engine: AsyncEngine) -> ChangeStamp:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return NoStamp()
        return SqliteDataVersion(parsed.database)
    return PostgresSnapshotStamp(engine)
