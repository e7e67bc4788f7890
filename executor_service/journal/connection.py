"""Opening the journal and using its one connection: the state dir's lock, the journal's
own thread, reads and transactions.

One process owns a state dir: an exclusive ``flock`` on ``executor.lock`` makes a second
executor on the same dir fail loudly instead of running the same promises twice. The state
dir is 0700 and the journal 0600: stored post plans carry parameter values.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self, TypeVar

from executor_service.journal.schema import migrate, refuse_newer
from executor_service.journal.sealing import Sealer
from executor_service.journal.space import StateDirFull, StateDirSpace

_T = TypeVar("_T")
AUTOCHECKPOINT_PAGES = 1000  # SQLite's default, for synced commits
AUTO_VACUUM_INCREMENTAL = 2
WAL_SIZE_LIMIT = 4 * 1024 * 1024


class StateDirInUse(RuntimeError):
    """Another executor process holds this state dir."""


def lock_state_dir(state_dir: Path) -> int:
    fd = os.open(state_dir / "executor.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateDirInUse(
            f"another executor holds {state_dir} (its executor.lock is locked)"
        ) from None
    return fd


def connect(path: Path) -> sqlite3.Connection:
    """The connection, set up, with the journal at the current schema version."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.row_factory = sqlite3.Row
        # One connection in one process ever uses it (the state dir's lock): its locks are
        # taken once and kept, and the log's index lives in memory instead of a
        # shared-memory file, which saves every transaction a few lock calls.
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        # Before anything writes: a journal from a newer executor is left as it is.
        refuse_newer(db, path)
        # Small pages for a new journal: a step's commit changes ~8 pages of a few small
        # rows and indexes, appended whole to the log and synced; 1 KiB pages write
        # 7.6 KiB per step instead of 28 KiB (measured).
        db.execute("PRAGMA page_size=1024")
        # Pages freed by retention (retention.py) go back to the file system
        # (`PRAGMA incremental_vacuum`); for a new journal this takes effect with its first
        # table, an older one is converted once below.
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        db.execute("PRAGMA journal_mode=WAL")
        # The log is cut back to this after a checkpoint instead of keeping its largest size.
        db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db, path)  # synced: FULL
        if db.execute("PRAGMA auto_vacuum").fetchone()[0] != AUTO_VACUUM_INCREMENTAL:
            # A journal made before retention: VACUUM rewrites it once with the setting
            # (seconds for a large one, at start, before anything uses it).
            db.execute("VACUUM")
        # Unsynced is the connection's default: most commits (a step's started row and
        # result) are; a synced transaction switches for its own commit.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0")
    except BaseException:
        db.close()
        raise
    return db


class Connection:
    """Async access to the journal's connection.

    One connection, used by one thread of its own: a call (a whole transaction, or a read)
    is one hop to that thread and back, so the event loop never waits for the disk. The
    thread serialises them, so a transaction never interleaves with another task's
    statements, and a caller cancelled while its transaction runs does not cut it in half
    (it commits or rolls back as a whole).

    Calls that never wait for the disk — reads, and the few commits that are not synced —
    run in the event loop's thread instead when the connection is free at that moment
    (``_lock``): a few tens of microseconds of SQLite instead of two thread switches.
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        thread: ThreadPoolExecutor,
        lock_fd: int,
        path: Path,
        sealer: Sealer | None = None,
    ) -> None:
        self._db = db
        self._sealer = sealer or Sealer()
        self._thread = thread
        self._lock = threading.Lock()  # whoever uses the connection holds it
        self._lock_fd = lock_fd
        self._path = path
        self.space = StateDirSpace(path.parent)

    @classmethod
    async def open(cls, state_dir: Path, *, journal_key: str = "") -> Self:
        """Create or open ``<state_dir>/journal.db``, taking the state dir for this process,
        and bring it to the current schema version (`schema.migrate`) before anything
        else uses it. With ``journal_key`` secret values are sealed (sealing.py)."""
        sealer = Sealer(journal_key)  # a malformed key fails here, before anything is taken
        state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(state_dir, 0o700)
        lock_fd = lock_state_dir(state_dir)
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        try:
            path = state_dir / "journal.db"
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            db = await asyncio.get_running_loop().run_in_executor(thread, connect, path)
        except BaseException:
            thread.shutdown(wait=False)
            os.close(lock_fd)
            raise
        connection = cls(db, thread, lock_fd, path, sealer)
        await asyncio.to_thread(connection.space.ensure_reserve)
        return connection

    async def close(self) -> None:
        await self._call(self._db.close)
        self._thread.shutdown(wait=True)
        os.close(self._lock_fd)

    async def _call(self, function: Callable[[], _T], *, inline: bool = False) -> _T:
        """Run ``function`` with the connection: on the journal's thread, or right here if
        ``inline`` (it does not wait for the disk) and nobody is using the connection."""
        if inline and self._lock.acquire(blocking=False):
            try:
                return function()
            finally:
                self._lock.release()

        def locked() -> _T:
            with self._lock:
                return function()

        return await asyncio.get_running_loop().run_in_executor(self._thread, locked)

    async def _read(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return await self._call(lambda: self._db.execute(sql, parameters).fetchall(), inline=True)

    async def _transact(
        self,
        body: Callable[[sqlite3.Connection], _T],
        *,
        synced: bool = True,
        background: bool = False,
    ) -> _T:
        """Run ``body`` in one transaction, in one hop. ``synced=False`` skips the fsync of
        this commit: it survives the executor being killed (the WAL is in the OS's cache)
        and is synced with the next synced commit, but not a power cut in between. Such a
        commit never checkpoints either (that would fsync), so it may run inline; the next
        synced one does, and so does ``background`` work (retention), which never holds up
        the event loop.

        A commit the full disk refuses (SQLITE_FULL) spends the state dir's reserve and is
        tried once more (space.py): an open run's post chain still gets written. With no
        reserve left it is StateDirFull (RESOURCE_EXHAUSTED), never a broken journal:
        SQLite rolls the transaction back whole."""
        db = self._db

        def attempt() -> _T:
            if synced:
                db.execute("PRAGMA synchronous=FULL")
                db.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = body(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return result
            finally:
                if synced:
                    db.execute("PRAGMA wal_autocheckpoint=0")
                    db.execute("PRAGMA synchronous=NORMAL")

        def transaction() -> _T:
            try:
                return attempt()
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode != sqlite3.SQLITE_FULL:
                    raise
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if not self.space.release_reserve():
                    raise StateDirFull(
                        f"the executor's state dir {self._path.parent} is full and its "
                        "reserve is spent: the journal cannot take this change (nothing of "
                        "it was written); free space on its volume",
                        metadata={"state_dir": str(self._path.parent)},
                    ) from error
            try:
                return attempt()
            except sqlite3.OperationalError as error:
                if error.sqlite_errorcode != sqlite3.SQLITE_FULL:
                    raise
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise StateDirFull(
                    f"the executor's state dir {self._path.parent} is full even after its "
                    "reserve was released: the journal cannot take this change (nothing of "
                    "it was written); free space on its volume",
                    metadata={"state_dir": str(self._path.parent)},
                ) from error

        return await self._call(transaction, inline=not synced and not background)
