"""Engine and sessions for SQLite (embedded default) and PostgreSQL (asyncpg)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from library_service.store.storage import SpaceReserve, is_storage_full, storage_full_error


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


# Connections kept open between calls. It must cover the calls a server runs at once: a
# call that finds the pool empty opens an overflow connection, which is closed again when
# it comes back to a full pool, so a pool smaller than the usual concurrency opens and
# closes connections on every call (a thread and four PRAGMAs for aiosqlite; a login,
# settings and type introspection for asyncpg).
POOL_SIZE = 20
MAX_OVERFLOW = 20
# Execution option naming how a SQLite transaction begins: "IMMEDIATE" (the default) or
# "DEFERRED" (read-only sessions).
SQLITE_BEGIN_OPTION = "hookshelf_sqlite_begin"


def create_engine(url: str) -> AsyncEngine:
    """An engine tuned per backend: WAL and foreign keys on SQLite, a pool on PostgreSQL."""
    if is_sqlite(url):
        # aiosqlite runs each connection in a thread of its own; the pool keeps them.
        engine = create_async_engine(
            url,
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
            connect_args={"timeout": 30},
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
            # The driver would BEGIN only before the first INSERT/UPDATE/DELETE, leaving a
            # transaction's reads outside it: two updates with the same etag both passed
            # the check and the first was lost. BEGIN is ours instead (_sqlite_begin).
            dbapi_connection.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(connection):
            # IMMEDIATE takes the write lock at the start, so a read-check-write sequence
            # (etags, unique names, "SELECT ... FOR UPDATE", which SQLite ignores) cannot
            # interleave with another writer's; in WAL mode readers are not blocked.
            # Read-only sessions (Database.reading) ask for DEFERRED: one snapshot, no lock.
            mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
            connection.exec_driver_sql(f"BEGIN {mode}")

        return engine
    # asyncpg prepares statements; after a few runs PostgreSQL may switch to a generic plan
    # that cannot see a LIKE pattern and so ignores the trigram indexes (200 ms instead of
    # 5 over 100,000 scripts). Plan for each set of parameters instead.
    return create_async_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
        pool_pre_ping=True,
        connect_args={"server_settings": {"plan_cache_mode": "force_custom_plan"}},
    )


class Database:
    """Owns the engine; hands out sessions with a transaction around each unit of work."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Reads on PostgreSQL run without BEGIN and COMMIT: under READ COMMITTED each
        # statement takes its own snapshot inside a transaction too, so the transaction
        # adds nothing to a read but two round trips. SQLite keeps its transaction: there
        # it is what holds one snapshot across a read's statements, and costs no trip; it
        # is DEFERRED, so it takes no write lock.
        self._reading = (
            async_sessionmaker(
                self.engine.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"}),
                expire_on_commit=False,
            )
            if self.is_sqlite
            else async_sessionmaker(
                self.engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
            )
        )

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    @property
    def space_reserve(self) -> SpaceReserve | None:
        """The reserve beside a SQLite file (storage.py); None for PostgreSQL or memory."""
        if not self.is_sqlite:
            return None
        path = make_url(self.url).database
        if not path or path == ":memory:":
            return None
        return SpaceReserve(Path(path).parent)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits on success and rolls back on any exception. A
        full disk is `StorageFull` (RESOURCE_EXHAUSTED), nothing written."""
        try:
            async with self._sessions() as session, session.begin():
                yield session
        except Exception as error:
            if is_storage_full(error):
                raise storage_full_error("the database cannot grow") from error
            raise

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only (GetScript, ListScripts, ResolveHookPlan,
        ListExecutions, the mirror's scan): never write through it. On SQLite it takes
        no write lock (BEGIN DEFERRED); on PostgreSQL each statement reads its own
        snapshot, so a unit of several statements that must agree needs `transaction`."""
        async with self._reading() as session, session.begin():
            yield session

    async def close(self) -> None:
        await self.engine.dispose()
