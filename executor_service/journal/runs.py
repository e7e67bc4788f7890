"""The ``runs`` table: one row per backup run, inline-hooks run or open maintenance
window, written (synced) before any child process of the run starts."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from executor_service.journal.connection import Connection
from executor_service.journal.kept_plans import UPSERT_KEPT_PLAN, KeptPlan, kept_plan_values
from executor_service.journal.rows import RunRecord, encode_run_value, run_of, run_values
from shared.errors import FailedPrecondition
from shared.stubs import executor_pb2

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

_INSERT_RUN = (
    "INSERT INTO runs (run_id, kind, repository_id, job_id, repository_path, "
    "trigger, state, verdict, outcome, lease_seconds, lease_expires_at, "
    "pre_started, post_chain_done, variables, post_plan, created_at, plan_source, "
    "plan_resolved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_OPEN_RUN_OF_REPOSITORY = (
    f"SELECT * FROM runs WHERE repository_id = ? AND state != {executor_pb2.RUN_STATE_ENDED}"
)


class Runs(Connection):
    async def create_run(self, run: RunRecord, *, keep: Sequence[KeptPlan] = ()) -> None:
        """Write a new run (synced). A repository with an open run: FailedPrecondition.
        ``keep``: plans just resolved from the library, kept in the same transaction (one
        sync) for when the library is unreachable (kept_plans.py)."""
        values = run_values(run, self._sealer)
        kept = [kept_plan_values(plan, self._sealer) for plan in keep]

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
            db.execute(_INSERT_RUN, values)
            if kept:
                db.executemany(UPSERT_KEPT_PLAN, kept)

        await self._transact(body)

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._read("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return run_of(rows[0], self._sealer) if rows else None

    async def update_run(self, run_id: str, **changes: Any) -> None:
        """Set some columns of a run (synced)."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        columns = sorted(changes)
        assignments = ", ".join(f"{column} = ?" for column in columns)
        values = [encode_run_value(column, changes[column]) for column in columns]
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
        rows = await self._read(_OPEN_RUN_OF_REPOSITORY, (repository_id,))
        return run_of(rows[0], self._sealer) if rows else None

    async def open_runs(self) -> list[RunRecord]:
        rows = await self._read(
            f"SELECT * FROM runs WHERE state != {executor_pb2.RUN_STATE_ENDED} ORDER BY created_at"
        )
        return [run_of(row, self._sealer) for row in rows]

    async def expired_runs(self, now: float) -> list[str]:
        """Runs waiting for EndBackup whose lease has run out."""
        rows = await self._read(
            "SELECT run_id FROM runs WHERE state = ? AND lease_expires_at <= ? "
            "ORDER BY lease_expires_at",
            (executor_pb2.RUN_STATE_AWAITING_END, now),
        )
        return [row["run_id"] for row in rows]
