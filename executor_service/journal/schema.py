"""The journal's tables, its schema version, and the migrations that bring an older
journal up to the current version.

The version is SQLite's ``PRAGMA user_version`` (0 in a database that never set it).
Version 0 is what the journal was before it recorded a version: either nothing at all (a
new journal) or the layout of version 1 without the number. `MIGRATIONS[n]` takes a
journal from version ``n`` to ``n + 1``; `migrate` runs the ones a journal lacks, in one
transaction with the new version number, when the journal is opened and before anything
else uses it. A journal newer than this code is refused (`JournalTooNew`): an older
executor must never use a journal it does not understand, nor quietly downgrade it.

A new version: write ``_to_version_N(db)`` (plain SQL on the connection; it runs inside
the upgrade's transaction, so it must not commit) and append it to `MIGRATIONS`.
`SCHEMA_VERSION` follows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from shared.stubs import executor_pb2

# Version 1: the five tables as first kept.
_VERSION_1 = f"""
-- Small facts about this executor: 'executor_id', its stable id (`Meta.executor_id`).
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


def _to_version_1(db: sqlite3.Connection) -> None:
    """A new journal gets the tables; a journal of the unversioned layout has them all
    already (every statement is ``IF NOT EXISTS``) and only gains the number. The
    statements one by one: ``executescript`` would commit the upgrade's transaction."""
    for statement in _statements(_VERSION_1):
        db.execute(statement)


def _statements(script: str) -> list[str]:
    found, pending = [], ""
    for line in script.splitlines(keepends=True):
        if not pending and line.lstrip().startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    assert not pending.strip(), pending
    return found


# Version 2 (issue 12): the last plans resolved per repository and hook type, so backups
# go on while the library is unreachable; and where each run's plans came from.
_VERSION_2 = """
-- The last plan the library resolved for a repository and hook type (digests only: the
-- content is in the content cache, on disk). Secret values sealed as in runs.post_plan.
CREATE TABLE kept_plans (
    repository_id TEXT NOT NULL,
    hook_type INTEGER NOT NULL,
    plan BLOB NOT NULL,
    resolved_at REAL NOT NULL,
    PRIMARY KEY (repository_id, hook_type)
);
-- PlanSource of the run's plans (0: not a backup run, or a run of version 1) and when the
-- library resolved them.
ALTER TABLE runs ADD COLUMN plan_source INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN plan_resolved_at REAL;
"""


def _to_version_2(db: sqlite3.Connection) -> None:
    for statement in _statements(_VERSION_2):
        db.execute(statement)


# Version 3 (issue 17): retention finds ended runs by when they ended.
_VERSION_3 = f"""
CREATE INDEX runs_ended ON runs (ended_at) WHERE state = {executor_pb2.RUN_STATE_ENDED};
"""


def _to_version_3(db: sqlite3.Connection) -> None:
    for statement in _statements(_VERSION_3):
        db.execute(statement)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _to_version_1,
    _to_version_2,
    _to_version_3,
]
SCHEMA_VERSION = len(MIGRATIONS)


class JournalTooNew(RuntimeError):
    """The journal was written by a newer executor (a higher schema version)."""


def version_of(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def refuse_newer(db: sqlite3.Connection, path: object) -> int:
    """The journal's version; `JournalTooNew` if this code does not know it."""
    version = version_of(db)
    if version > SCHEMA_VERSION:
        raise JournalTooNew(
            f"the journal {path} has schema version {version}, newer than the "
            f"{SCHEMA_VERSION} this executor knows: it was written by a newer executor; "
            "run that version (or newer) on this state dir, never an older one"
        )
    return version


def migrate(db: sqlite3.Connection, path: object) -> int:
    """Bring the journal to `SCHEMA_VERSION`, in one transaction (synced by the caller's
    ``synchronous`` setting); returns the version it was at. The version is read again
    under the write lock, so the check and the upgrade see the same journal."""
    db.execute("BEGIN IMMEDIATE")
    try:
        found = refuse_newer(db, path)
        for step in MIGRATIONS[found:]:
            step(db)
        if found != SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return found
