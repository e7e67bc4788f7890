"""Step results committed without an fsync, synced in the background: the write-ahead
log's fsync, the bookkeeping of what is not yet synced, and checkpoints of the log.

A step result is committed with ``synchronous=NORMAL`` (appended to the log, no fsync) so
the chain can go on at once; `Syncing._sync_soon` then fsyncs the log on the journal's
thread. Until that is done nothing may tell of the result (`Steps.commit_step_result`):
``_unsynced`` holds the execution ids the recorder must not send yet, ``_syncs`` the syncs
a reader that answers a client waits for (`synced`).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from executor_service.journal.connection import Connection
from executor_service.journal.sealing import Sealer

# Step results are committed without a sync and so never checkpoint the log themselves;
# every this many, their background sync does. A step writes ~8 pages (its result, its
# record and the next attempt), so this checkpoints about as often as SQLite's default.
CHECKPOINT_EVERY_RESULTS = 100


class WalSync:
    """fsync of the journal's write-ahead log, for commits made without one.

    In WAL mode a commit with ``synchronous=NORMAL`` is appended to the log without an
    fsync; an fsync of the log afterwards makes it as durable as a ``synchronous=FULL``
    commit (which is exactly that append plus that fsync), without holding the connection
    meanwhile. SQLite keeps the log file while a connection is open; should it have been
    replaced anyway, the new one is opened and its directory synced too (its name must
    survive as well as its bytes).
    """

    def __init__(self, db_path: Path) -> None:
        self._path = db_path.with_name(db_path.name + "-wal")
        self._fd: int | None = None

    def sync(self) -> None:
        if self._fd is not None and os.fstat(self._fd).st_ino != _inode(self._path):
            self.close()
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
            directory = os.open(self._path.parent, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


class Syncing(Connection):
    """The background syncs of step results (see the module doc)."""

    def __init__(
        self,
        db: sqlite3.Connection,
        thread: ThreadPoolExecutor,
        lock_fd: int,
        path: Path,
        sealer: Sealer | None = None,
    ) -> None:
        super().__init__(db, thread, lock_fd, path, sealer)
        self._wal = WalSync(path)  # used on the journal's thread only
        # Step results committed but not yet synced: the records the recorder must not
        # send yet, and the syncs a reader that answers a client waits for.
        self._unsynced: set[str] = set()
        self._syncs: set[asyncio.Future[None]] = set()
        self._since_checkpoint = 0
        # Step results committed so far, and how many of them a sync has covered: a sync
        # covers every result committed before it began, so syncs queued behind a slow
        # one find their result covered and skip the fsync (`_sync_log`).
        self._results_committed = 0
        self._results_synced = 0

    async def close(self) -> None:
        if self._syncs:
            await asyncio.wait(self._syncs)  # a failed one was reported to its chain
        await self._call(self._wal.close)
        await super().close()

    def _sync_soon(self, result: int, checkpoint: bool) -> asyncio.Future[None]:
        """A future done once the log is synced. A task, so the sync is handed to the
        journal's thread when the loop next turns, not now: waking that thread (which
        then wants the GIL) would hold up what the caller does next, typically starting
        the next step's process, which need not wait for the sync."""
        loop = asyncio.get_running_loop()

        async def sync() -> None:
            await loop.run_in_executor(self._thread, self._sync_log, result, checkpoint)

        return asyncio.ensure_future(sync())

    def _sync_log(self, result: int, checkpoint: bool) -> None:
        """On the journal's thread: sync the log unless a sync since ``result`` was
        committed did; now and then also checkpoint it, which unsynced commits never do
        (it would fsync inline), so the log does not grow without bound through a long
        chain."""
        if self._results_synced < result:
            # Counted only once committed, so the fsync covers every result counted now.
            covered = self._results_committed
            self._wal.sync()
            self._results_synced = max(self._results_synced, covered)
        if checkpoint:
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def synced(self) -> None:
        """Wait until every step result committed so far is synced (raises if a sync
        failed)."""
        if self._syncs:
            await asyncio.gather(*self._syncs)
