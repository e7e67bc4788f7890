"""The `script_run_tracker` table: one row per run (or rollback) of a maintenance script.

The schema is created by the library's migration 0002; this module only describes it
(SQLAlchemy Core, so the framework does not depend on the library's ORM models) and holds
the few queries the runner needs. Times are stored in UTC. SQLite hands them back naive,
so every read goes through `_utc` before it is compared.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

PENDING = "pending"
SUCCESS = "success"
FAILED = "failed"
ROLLED_BACK = "rolled_back"

RUN = "run"
ROLLBACK = "rollback"

# Output and error are for people reading `status`; keep a run's row bounded.
MAX_TEXT = 64 * 1024

metadata = MetaData()

script_run_tracker = Table(
    "script_run_tracker",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("script_name", String(255), nullable=False),
    Column("status", String(32), nullable=False),
    Column("action", String(32), nullable=False),
    Column("forced", Boolean, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("duration_ms", BigInteger),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("lease_expires_at", DateTime(timezone=True)),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("checksum", String(71), nullable=False),
    Column("output", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("details", JSON),
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def bounded(text: str) -> str:
    """Keep the head and the tail of a long text: the start says what ran, the end why."""
    if len(text) <= MAX_TEXT:
        return text
    half = MAX_TEXT // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters left out ...]\n{text[-half:]}"


@dataclass
class TrackedRun:
    """One row of script_run_tracker."""

    id: int
    script_name: str
    status: str
    action: str
    forced: bool
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    heartbeat_at: datetime | None
    lease_expires_at: datetime | None
    host: str
    pid: int
    checksum: str
    output: str
    error: str
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Any) -> TrackedRun:
        values = dict(row._mapping)
        for name in ("started_at", "finished_at", "heartbeat_at", "lease_expires_at"):
            values[name] = _utc(values[name])
        values["details"] = values["details"] or {}
        return cls(**values)

    def where(self) -> str:
        """Who ran it, for messages: "host web-1 pid 4242"."""
        return f"host {self.host} pid {self.pid}"


async def start(
    engine: AsyncEngine, name: str, *, action: str, forced: bool, checksum: str, lease: float
) -> TrackedRun:
    """Insert the pending row of a run that is starting now, in this process."""
    now = utcnow()
    values: dict[str, Any] = {
        "script_name": name,
        "status": PENDING,
        "action": action,
        "forced": forced,
        "started_at": now,
        "heartbeat_at": now,
        "lease_expires_at": now + timedelta(seconds=lease),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "checksum": checksum,
        "output": "",
        "error": "",
        "details": {},
    }
    async with engine.begin() as conn:
        result = await conn.execute(insert(script_run_tracker).values(**values))
        key = result.inserted_primary_key
        assert key is not None  # a single-row INSERT reports the key it made
        run_id = key[0]
    return TrackedRun(id=run_id, finished_at=None, duration_ms=None, **values)


async def heartbeat(engine: AsyncEngine, run_id: int, *, lease: float, output: str) -> None:
    """Renew the lease of a pending run and save its output so far."""
    now = utcnow()
    async with engine.begin() as conn:
        await conn.execute(
            update(script_run_tracker)
            .where(script_run_tracker.c.id == run_id, script_run_tracker.c.status == PENDING)
            .values(
                heartbeat_at=now,
                lease_expires_at=now + timedelta(seconds=lease),
                output=bounded(output),
            )
        )


async def finish(
    engine: AsyncEngine,
    run: TrackedRun,
    *,
    status: str,
    output: str,
    error: str,
    details: dict[str, Any],
) -> None:
    """Record how a run ended. Also overwrites an "interrupted" verdict another caller
    reached while this process was stalled: what really happened wins."""
    now = utcnow()
    run.status, run.finished_at = status, now
    run.duration_ms = int((now - run.started_at).total_seconds() * 1000)
    async with engine.begin() as conn:
        await conn.execute(
            update(script_run_tracker)
            .where(script_run_tracker.c.id == run.id)
            .values(
                status=status,
                finished_at=now,
                duration_ms=run.duration_ms,
                lease_expires_at=None,
                output=bounded(output),
                error=bounded(error),
                details=details,
            )
        )


async def mark(engine: AsyncEngine, run_id: int, status: str) -> None:
    """Change the status of a finished run (a run that was rolled back)."""
    async with engine.begin() as conn:
        await conn.execute(
            update(script_run_tracker)
            .where(script_run_tracker.c.id == run_id)
            .values(status=status)
        )


async def recent(engine: AsyncEngine, name: str, limit: int = 10) -> list[TrackedRun]:
    """The newest runs and rollbacks of a script, newest first."""
    query = (
        select(script_run_tracker)
        .where(script_run_tracker.c.script_name == name)
        .order_by(script_run_tracker.c.id.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        return [TrackedRun.from_row(row) for row in await conn.execute(query)]


async def pending(engine: AsyncEngine, name: str) -> list[TrackedRun]:
    query = select(script_run_tracker).where(
        script_run_tracker.c.script_name == name, script_run_tracker.c.status == PENDING
    )
    async with engine.connect() as conn:
        return [TrackedRun.from_row(row) for row in await conn.execute(query)]


async def last_finished(
    engine: AsyncEngine, name: str, *, action: str = RUN, status: str | None = None
) -> TrackedRun | None:
    """The newest finished run (optionally of one status) of a script."""
    query = select(script_run_tracker).where(
        script_run_tracker.c.script_name == name,
        script_run_tracker.c.action == action,
        script_run_tracker.c.status != PENDING,
    )
    if status is not None:
        query = query.where(script_run_tracker.c.status == status)
    query = query.order_by(script_run_tracker.c.id.desc()).limit(1)
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return TrackedRun.from_row(row) if row is not None else None


async def reap_interrupted(engine: AsyncEngine, name: str, *, owner_gone: bool) -> list[TrackedRun]:
    """Turn the pending rows whose process is gone into failed ("interrupted").

    `owner_gone` is true when the caller holds the script's run lock: a pending row can
    only exist under that lock, so its owner died (a dead process loses its flock or its
    PostgreSQL session, and with it the lock). Without the lock, a row is only taken for
    dead when its lease ran out: no heartbeat for a whole lease (a vanished host whose
    session the server has not noticed yet).
    """
    now = utcnow()
    reaped = []
    for run in await pending(engine, name):
        expired = run.lease_expires_at is not None and run.lease_expires_at < now
        if not (owner_gone or expired):
            continue
        why = "its process is gone (run lock released)" if owner_gone else "its lease expired"
        run.error = (
            f"interrupted: {why}; started {run.started_at:%Y-%m-%d %H:%M:%S}Z on {run.where()}, "
            f"last heartbeat {run.heartbeat_at:%Y-%m-%d %H:%M:%S}Z"
        )
        async with engine.begin() as conn:
            result = await conn.execute(
                update(script_run_tracker)
                .where(script_run_tracker.c.id == run.id, script_run_tracker.c.status == PENDING)
                .values(status=FAILED, finished_at=now, lease_expires_at=None, error=run.error)
            )
        if result.rowcount:
            run.status, run.finished_at = FAILED, now
            reaped.append(run)
    return reaped
