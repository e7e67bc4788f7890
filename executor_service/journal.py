"""The executor's local journal: what it promised, kept on disk before it acts.

SQLite under ``HOOKSHELF_EXECUTOR_STATE_DIR`` (WAL; ``synchronous=FULL`` for what the
promise rests on: such a commit is on disk when it returns, because the journal *is* the
promise; see `Journal._transact` and `Journal.commit_step_result` for what is not).
Three tables:

- ``runs``: one row per backup run (or inline-hooks run, or open maintenance window),
  written before any child process of the run starts. ``pre_started`` is set (and
  synced) before the first pre hook starts; from then on the post chain is owed. The
  post plan is resolved and stored at BeginBackup, so the post chain can run while the
  library is away. A partial unique index keeps one open run per repository.
- ``steps``: one row per step *attempt*, written when it starts (not synced, see
  `Journal.step_started`) and completed when it ends: committed at once, synced in the
  background (`Journal.commit_step_result`), and nothing tells of the result before it is
  synced. ``done`` marks an attempt whose result counts; an attempt cut short by a crash
  or a shutdown is not done, so a resumed post chain runs that step again and never runs
  a finished one twice.
- ``outbox``: the execution records for the library, written in the same transaction as
  the step result and delivered later (recorder.py), idempotent by execution id.

One process owns a state dir: an exclusive ``flock`` on ``executor.lock`` makes a second
executor on the same dir fail loudly instead of running the same promises twice.
The state dir is 0700 and the journal 0600: stored post plans carry parameter values.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from shared.errors import FailedPrecondition
from shared.stubs import executor_pb2, library_pb2

_T = TypeVar("_T")
_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default
# Step results are committed without a sync and so never checkpoint the log themselves;
# every this many, their background sync does. A step writes ~8 pages (its result, its
# record and the next attempt), so this checkpoints about as often as SQLite's default.
_CHECKPOINT_EVERY_RESULTS = 100

RUN_STATE = executor_pb2.RunState
OPEN_STATES = (
    executor_pb2.RUN_STATE_PRE_RUNNING,
    executor_pb2.RUN_STATE_AWAITING_END,
    executor_pb2.RUN_STATE_POST_RUNNING,
)

KIND_BACKUP = "backup"
KIND_INLINE = "inline"
KIND_WINDOW = "window"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    repository_id TEXT NOT NULL,
    job_id TEXT NOT NULL DEFAULT '',
    repository_path TEXT NOT NULL DEFAULT '',
    trigger INTEGER NOT NULL,
    state INTEGER NOT NULL,
    verdict INTEGER NOT NULL DEFAULT 0,
    outcome INTEGER NOT NULL DEFAULT 0,
    lease_seconds INTEGER NOT NULL,
    lease_expires_at REAL NOT NULL,
    pre_started INTEGER NOT NULL DEFAULT 0,
    post_chain_done INTEGER NOT NULL DEFAULT 0,
    variables TEXT NOT NULL DEFAULT '{{}}',
    post_plan BLOB NOT NULL DEFAULT x'',
    pre_summary BLOB,
    post_summary BLOB,
    created_at REAL NOT NULL,
    ended_at REAL
);
-- One open run per repository: a second BeginBackup is FAILED_PRECONDITION.
CREATE UNIQUE INDEX IF NOT EXISTS runs_one_open_per_repository
    ON runs (repository_id) WHERE state != {executor_pb2.RUN_STATE_ENDED};
CREATE INDEX IF NOT EXISTS runs_by_state ON runs (state, lease_expires_at);
CREATE TABLE IF NOT EXISTS steps (
    execution_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    hook_type INTEGER NOT NULL,
    step_index INTEGER NOT NULL,
    script_name TEXT NOT NULL,
    status INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    started_at REAL NOT NULL,
    ended_at REAL,
    done INTEGER NOT NULL DEFAULT 0,
    outputs TEXT NOT NULL DEFAULT '{{}}',
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS steps_by_run ON steps (run_id, hook_type, step_index);
CREATE INDEX IF NOT EXISTS steps_unfinished ON steps (ended_at) WHERE ended_at IS NULL;
CREATE TABLE IF NOT EXISTS outbox (
    execution_id TEXT PRIMARY KEY,
    record BLOB NOT NULL,
    created_at REAL NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
-- The holders of an open maintenance window (a run of kind 'window').
CREATE TABLE IF NOT EXISTS window_holders (
    run_id TEXT NOT NULL,
    holder_id TEXT NOT NULL,
    lease_expires_at REAL NOT NULL,
    PRIMARY KEY (run_id, holder_id)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (created_at) WHERE delivered = 0;
"""

# Columns update_run may set; anything else is a programming error.
_UPDATABLE = frozenset(
    {
        "state",
        "verdict",
        "outcome",
        "lease_seconds",
        "lease_expires_at",
        "pre_started",
        "post_chain_done",
        "variables",
        "pre_summary",
        "post_summary",
        "ended_at",
    }
)


class StateDirInUse(RuntimeError):
    """Another executor process holds this state dir."""


@dataclass
class RunRecord:
    """A run as the journal holds it."""

    run_id: str
    repository_id: str
    kind: str = KIND_BACKUP
    job_id: str = ""
    repository_path: str = ""
    trigger: int = library_pb2.EXECUTION_TRIGGER_BACKUP
    state: int = executor_pb2.RUN_STATE_PRE_RUNNING
    verdict: int = executor_pb2.VERDICT_UNSPECIFIED
    outcome: int = library_pb2.BACKUP_OUTCOME_UNSPECIFIED
    lease_seconds: int = 600
    lease_expires_at: float = 0.0
    pre_started: bool = False
    post_chain_done: bool = False
    variables: dict[str, str] = field(default_factory=dict)
    post_plan: list[library_pb2.PlanStep] = field(default_factory=list)
    pre_summary: executor_pb2.SummaryEvent | None = None
    post_summary: executor_pb2.SummaryEvent | None = None
    created_at: float = 0.0
    ended_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self.state != executor_pb2.RUN_STATE_ENDED


@dataclass
class StepRow:
    """One attempt at one step."""

    execution_id: str
    run_id: str
    hook_type: int
    step_index: int
    script_name: str
    started_at: float
    record: library_pb2.Execution
    status: int = library_pb2.EXECUTION_STATUS_UNSPECIFIED
    exit_code: int = 0
    duration_ms: int = 0
    ended_at: float | None = None
    done: bool = False
    outputs: dict[str, str] = field(default_factory=dict)


def _encode_plan(steps: Sequence[library_pb2.PlanStep]) -> bytes:
    return library_pb2.ResolveHookPlanResponse(steps=steps).SerializeToString()


def _decode_plan(blob: bytes) -> list[library_pb2.PlanStep]:
    return list(library_pb2.ResolveHookPlanResponse.FromString(blob or b"").steps)


def _decode_summary(blob: bytes | None) -> executor_pb2.SummaryEvent | None:
    return None if blob is None else executor_pb2.SummaryEvent.FromString(blob)


def _encode_value(column: str, value: Any) -> Any:
    if column == "variables":
        return json.dumps(value, sort_keys=True)
    if column in ("pre_summary", "post_summary"):
        return None if value is None else value.SerializeToString()
    if isinstance(value, bool):
        return int(value)
    return value


def _run_of(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        kind=row["kind"],
        repository_id=row["repository_id"],
        job_id=row["job_id"],
        repository_path=row["repository_path"],
        trigger=row["trigger"],
        state=row["state"],
        verdict=row["verdict"],
        outcome=row["outcome"],
        lease_seconds=row["lease_seconds"],
        lease_expires_at=row["lease_expires_at"],
        pre_started=bool(row["pre_started"]),
        post_chain_done=bool(row["post_chain_done"]),
        variables=json.loads(row["variables"]),
        post_plan=_decode_plan(row["post_plan"]),
        pre_summary=_decode_summary(row["pre_summary"]),
        post_summary=_decode_summary(row["post_summary"]),
        created_at=row["created_at"],
        ended_at=row["ended_at"],
    )


def _step_of(row: sqlite3.Row) -> StepRow:
    return StepRow(
        execution_id=row["execution_id"],
        run_id=row["run_id"],
        hook_type=row["hook_type"],
        step_index=row["step_index"],
        script_name=row["script_name"],
        started_at=row["started_at"],
        record=library_pb2.Execution.FromString(row["record"]),
        status=row["status"],
        exit_code=row["exit_code"],
        duration_ms=row["duration_ms"],
        ended_at=row["ended_at"],
        done=bool(row["done"]),
        outputs=json.loads(row["outputs"]),
    )


def _lock_state_dir(state_dir: Path) -> int:
    fd = os.open(state_dir / "executor.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateDirInUse(
            f"another executor holds {state_dir} (its executor.lock is locked)"
        ) from None
    return fd


_INSERT_STARTED = (
    "INSERT INTO steps (execution_id, run_id, hook_type, step_index, script_name, "
    "started_at, record) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _started_values(step: StepRow) -> tuple[Any, ...]:
    return (
        step.execution_id,
        step.run_id,
        step.hook_type,
        step.step_index,
        step.script_name,
        step.started_at,
        step.record.SerializeToString(),
    )


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


class Journal:
    """Async access to the journal.

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
        self, db: sqlite3.Connection, thread: ThreadPoolExecutor, lock_fd: int, path: Path
    ) -> None:
        self._db = db
        self._thread = thread
        self._lock = threading.Lock()  # whoever uses the connection holds it
        self._lock_fd = lock_fd
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

    @classmethod
    async def open(cls, state_dir: Path) -> Journal:
        """Create or open ``<state_dir>/journal.db``, taking the state dir for this process."""
        state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(state_dir, 0o700)
        lock_fd = _lock_state_dir(state_dir)
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        try:
            path = state_dir / "journal.db"
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))

            def connect() -> sqlite3.Connection:
                db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                db.row_factory = sqlite3.Row
                # One connection in one process ever uses it (the state dir's lock): its
                # locks are taken once and kept, and the log's index lives in memory
                # instead of a shared-memory file, which saves every transaction a few
                # lock calls.
                db.execute("PRAGMA locking_mode=EXCLUSIVE")
                # Small pages for a new journal: a step's commit changes ~8 pages of a few
                # small rows and indexes, appended whole to the log and synced; 1 KiB
                # pages write 7.6 KiB per step instead of 28 KiB (measured).
                db.execute("PRAGMA page_size=1024")
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute("PRAGMA foreign_keys=ON")
                db.executescript(_SCHEMA)
                # Unsynced is the connection's default: most commits (a step's started row
                # and result) are; a synced transaction switches for its own commit.
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA wal_autocheckpoint=0")
                return db

            db = await asyncio.get_running_loop().run_in_executor(thread, connect)
        except BaseException:
            thread.shutdown(wait=False)
            os.close(lock_fd)
            raise
        return cls(db, thread, lock_fd, path)

    async def close(self) -> None:
        if self._syncs:
            await asyncio.wait(self._syncs)  # a failed one was reported to its chain
        await self._call(self._wal.close)
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
        return await self._call(
            lambda: self._db.execute(sql, parameters).fetchall(), inline=True
        )

    async def _transact(
        self, body: Callable[[sqlite3.Connection], _T], *, synced: bool = True
    ) -> _T:
        """Run ``body`` in one transaction, in one hop. ``synced=False`` skips the fsync of
        this commit: it survives the executor being killed (the WAL is in the OS's cache)
        and is synced with the next synced commit, but not a power cut in between. Such a
        commit never checkpoints either (that would fsync), so it may run inline; the next
        synced one does."""
        db = self._db

        def transaction() -> _T:
            if synced:
                db.execute("PRAGMA synchronous=FULL")
                db.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
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

        return await self._call(transaction, inline=not synced)

    # --- identity -----------------------------------------------------------------------

    async def executor_id(self) -> str:
        """A stable id for this executor (its state dir), made on first use."""

        def body(db: sqlite3.Connection) -> str:
            row = db.execute("SELECT value FROM meta WHERE key = 'executor_id'").fetchone()
            if row is not None:
                return str(row["value"])
            made = f"executor-{uuid.uuid4().hex[:12]}"
            db.execute("INSERT INTO meta (key, value) VALUES ('executor_id', ?)", (made,))
            return made

        return await self._transact(body)

    # --- runs ---------------------------------------------------------------------------

    async def create_run(self, run: RunRecord) -> None:
        """Write a new run (synced). A repository with an open run: FailedPrecondition."""
        values = (
            run.run_id,
            run.kind,
            run.repository_id,
            run.job_id,
            run.repository_path,
            run.trigger,
            run.state,
            run.verdict,
            run.outcome,
            run.lease_seconds,
            run.lease_expires_at,
            int(run.pre_started),
            int(run.post_chain_done),
            json.dumps(run.variables, sort_keys=True),
            _encode_plan(run.post_plan),
            run.created_at,
        )

        def body(db: sqlite3.Connection) -> None:
            existing = db.execute(
                f"SELECT run_id FROM runs WHERE repository_id = ? "
                f"AND state != {executor_pb2.RUN_STATE_ENDED}",
                (run.repository_id,),
            ).fetchone()
            if existing is not None:
                raise FailedPrecondition(
                    f"repository {run.repository_id!r} already has an open run "
                    f"{existing['run_id']}; end it (EndBackup) first",
                    metadata={"run_id": existing["run_id"], "repository_id": run.repository_id},
                )
            db.execute(
                "INSERT INTO runs (run_id, kind, repository_id, job_id, repository_path, "
                "trigger, state, verdict, outcome, lease_seconds, lease_expires_at, "
                "pre_started, post_chain_done, variables, post_plan, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )

        await self._transact(body)

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._read("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return _run_of(rows[0]) if rows else None

    async def update_run(self, run_id: str, **changes: Any) -> None:
        """Set some columns of a run (synced)."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        columns = sorted(changes)
        assignments = ", ".join(f"{column} = ?" for column in columns)
        values = [_encode_value(column, changes[column]) for column in columns]
        sql = f"UPDATE runs SET {assignments} WHERE run_id = ?"
        await self._transact(lambda db: db.execute(sql, (*values, run_id)))

    async def extend_lease(self, run_id: str, expires_at: float) -> bool:
        """Move an open, not yet ending run's lease; False when the run is past that."""

        def body(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE runs SET lease_expires_at = ? WHERE run_id = ? AND state IN (?, ?)",
                (
                    expires_at,
                    run_id,
                    executor_pb2.RUN_STATE_PRE_RUNNING,
                    executor_pb2.RUN_STATE_AWAITING_END,
                ),
            )
            return cursor.rowcount == 1

        return await self._transact(body)

    async def open_run_for(self, repository_id: str) -> RunRecord | None:
        rows = await self._read(
            f"SELECT * FROM runs WHERE repository_id = ? "
            f"AND state != {executor_pb2.RUN_STATE_ENDED}",
            (repository_id,),
        )
        return _run_of(rows[0]) if rows else None

    async def open_runs(self) -> list[RunRecord]:
        rows = await self._read(
            f"SELECT * FROM runs WHERE state != {executor_pb2.RUN_STATE_ENDED} "
            "ORDER BY created_at"
        )
        return [_run_of(row) for row in rows]

    async def expired_runs(self, now: float) -> list[str]:
        """Runs waiting for EndBackup whose lease has run out."""
        rows = await self._read(
            "SELECT run_id FROM runs WHERE state = ? AND lease_expires_at <= ? "
            "ORDER BY lease_expires_at",
            (executor_pb2.RUN_STATE_AWAITING_END, now),
        )
        return [row["run_id"] for row in rows]

    # --- window holders -------------------------------------------------------------------

    async def holders(self, run_id: str) -> dict[str, float]:
        """Holder id → lease expiry."""
        rows = await self._read(
            "SELECT holder_id, lease_expires_at FROM window_holders WHERE run_id = ?", (run_id,)
        )
        return {row["holder_id"]: row["lease_expires_at"] for row in rows}

    async def set_holder(self, run_id: str, holder_id: str, expires_at: float) -> None:
        """Add or renew a holder; the run's lease becomes the latest of its holders'."""

        def body(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO window_holders (run_id, holder_id, lease_expires_at) "
                "VALUES (?, ?, ?) ON CONFLICT (run_id, holder_id) "
                "DO UPDATE SET lease_expires_at = excluded.lease_expires_at",
                (run_id, holder_id, expires_at),
            )
            self._lease_from_holders(db, run_id)

        await self._transact(body)

    async def remove_holders(self, run_id: str, holder_ids: Iterable[str]) -> None:
        """Let holders go (left, or their lease ran out); the run's lease follows the rest."""
        pairs = [(run_id, holder) for holder in holder_ids]

        def body(db: sqlite3.Connection) -> None:
            db.executemany(
                "DELETE FROM window_holders WHERE run_id = ? AND holder_id = ?", pairs
            )
            self._lease_from_holders(db, run_id)

        await self._transact(body)

    @staticmethod
    def _lease_from_holders(db: sqlite3.Connection, run_id: str) -> None:
        db.execute(
            "UPDATE runs SET lease_expires_at = (SELECT max(lease_expires_at) FROM "
            "window_holders WHERE run_id = ?) WHERE run_id = ? AND EXISTS "
            "(SELECT 1 FROM window_holders WHERE run_id = ?)",
            (run_id, run_id, run_id),
        )

    # --- steps --------------------------------------------------------------------------

    async def step_started(self, step: StepRow) -> None:
        """Note an attempt before its child process starts.

        Not synced: the row survives the executor being killed, which is what it is for
        — telling a restart which attempt was cut short, so it is recorded and, in a post
        chain, run again. After a power cut it may be missing, and the step is run again
        all the same (it has no finished result). What the promise rests on — the run,
        ``pre_started``, the state changes — is synced before anything depends on it, and
        the finished results with their records before anyone is told of them
        (`commit_step_result`, which also notes the next attempt of a chain).
        """
        values = _started_values(step)
        await self._transact(lambda db: db.execute(_INSERT_STARTED, values), synced=False)

    async def step_finished(
        self,
        record: library_pb2.Execution,
        *,
        ended_at: float,
        done: bool,
        outputs: dict[str, str] | None = None,
    ) -> None:
        """Complete an attempt and queue its execution record, in one transaction, synced
        when this returns. ``done``: the result counts (False for an attempt cut short by
        a shutdown or a crash, which a resumed chain runs again)."""
        await (
            await self.commit_step_result(record, ended_at=ended_at, done=done, outputs=outputs)
        )

    async def commit_step_result(
        self,
        record: library_pb2.Execution,
        *,
        ended_at: float,
        done: bool,
        outputs: dict[str, str] | None = None,
        then_started: StepRow | None = None,
    ) -> asyncio.Future[None]:
        """As `step_finished`, but returns once the transaction is committed, with a
        future that is done once it is synced. ``then_started``: the next attempt of the
        chain, noted in the same transaction (as `step_started` would): one commit per
        step of a chain instead of two.

        Committed, the result survives the executor being killed (it is in the OS's
        cache), so the chain may go on to its next step at once while the disk catches
        up. Until the future is done the result may still be lost to a power cut, and then
        the attempt counts as interrupted (its step runs again in a post chain), so
        nothing may tell of it before: the caller holds back the step's finished event,
        the recorder does not see its record, and `steps_of` waits.
        """
        serialized = record.SerializeToString()
        values = (
            record.status,
            record.exit_code,
            record.duration_ms,
            ended_at,
            int(done),
            json.dumps(outputs or {}, sort_keys=True),
            serialized,
            record.execution_id,
        )

        def body(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE steps SET status = ?, exit_code = ?, duration_ms = ?, ended_at = ?, "
                "done = ?, outputs = ?, record = ? WHERE execution_id = ?",
                values,
            )
            self._queue_record(db, record.execution_id, serialized, ended_at)
            if started is not None:
                db.execute(_INSERT_STARTED, started)

        started = None if then_started is None else _started_values(then_started)
        execution_id = record.execution_id
        self._unsynced.add(execution_id)
        try:
            await self._transact(body, synced=False)
        except BaseException:
            self._unsynced.discard(execution_id)
            raise
        # Commits are appended to the write-ahead log in order, so this sync also covers
        # every commit before it, synced or not.
        self._since_checkpoint += 1
        checkpoint = self._since_checkpoint >= _CHECKPOINT_EVERY_RESULTS
        if checkpoint:
            self._since_checkpoint = 0
        self._results_committed += 1
        sync = self._sync_soon(self._results_committed, checkpoint)
        self._syncs.add(sync)

        def synced(_: asyncio.Future[None]) -> None:
            self._syncs.discard(sync)
            if not sync.cancelled() and sync.exception() is None:
                # A failed fsync leaves the record unsent until a restart finds it.
                self._unsynced.discard(execution_id)

        sync.add_done_callback(synced)
        return sync

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

    async def record_only(self, record: library_pb2.Execution, *, now: float) -> None:
        """Queue an execution record that belongs to no run (TestScript)."""
        serialized = record.SerializeToString()
        await self._transact(
            lambda db: self._queue_record(db, record.execution_id, serialized, now)
        )

    @staticmethod
    def _queue_record(
        db: sqlite3.Connection, execution_id: str, serialized: bytes, now: float
    ) -> None:
        db.execute(
            "INSERT OR IGNORE INTO outbox (execution_id, record, created_at) VALUES (?, ?, ?)",
            (execution_id, serialized, now),
        )

    async def steps_of(self, run_id: str) -> list[StepRow]:
        """The attempts of a run, for a client: only results that are synced."""
        await self.synced()
        rows = await self._read(
            "SELECT * FROM steps WHERE run_id = ? ORDER BY started_at, rowid", (run_id,)
        )
        return [_step_of(row) for row in rows]

    async def done_steps(self, run_id: str, hook_type: int) -> dict[int, StepRow]:
        """The steps of a chain that have a result that counts, by index."""
        rows = await self._read(
            "SELECT * FROM steps WHERE run_id = ? AND hook_type = ? AND done "
            "ORDER BY started_at",
            (run_id, hook_type),
        )
        return {row["step_index"]: _step_of(row) for row in rows}

    async def unfinished_steps(self) -> list[StepRow]:
        """Attempts that started and never ended: the executor stopped under them."""
        rows = await self._read("SELECT * FROM steps WHERE ended_at IS NULL")
        return [_step_of(row) for row in rows]

    # --- outbox -------------------------------------------------------------------------

    async def pending_records(self, limit: int) -> list[library_pb2.Execution]:
        """Records to deliver, oldest first; not those whose step result is not yet synced
        (the library must never hold a record the journal could lose)."""
        unsynced = set(self._unsynced)
        rows = await self._read(
            "SELECT execution_id, record FROM outbox WHERE delivered = 0 "
            "ORDER BY created_at LIMIT ?",
            (limit + len(unsynced),),
        )
        return [
            library_pb2.Execution.FromString(row["record"])
            for row in rows
            if row["execution_id"] not in unsynced
        ][:limit]

    async def count_pending(self) -> int:
        rows = await self._read("SELECT count(*) AS n FROM outbox WHERE delivered = 0")
        return int(rows[0]["n"]) if rows else 0

    async def mark_delivered(self, execution_ids: Iterable[str]) -> None:
        """Not synced: a mark lost to a power cut only means the record is sent again, and
        the library ignores an execution id it already has (counted once)."""
        ids = [(i,) for i in execution_ids]
        await self._transact(
            lambda db: db.executemany(
                "UPDATE outbox SET delivered = 1, attempts = attempts + 1, last_error = '' "
                "WHERE execution_id = ?",
                ids,
            ),
            synced=False,
        )

    async def mark_rejected(self, execution_id: str, error: str) -> None:
        """The library refuses this record for good: stop sending it, keep it for a human."""
        await self._transact(
            lambda db: db.execute(
                "UPDATE outbox SET delivered = 2, attempts = attempts + 1, last_error = ? "
                "WHERE execution_id = ?",
                (error[:1000], execution_id),
            )
        )

    async def prune_delivered(self, before: float) -> None:
        await self._transact(
            lambda db: db.execute(
                "DELETE FROM outbox WHERE delivered = 1 AND created_at < ?", (before,)
            )
        )
