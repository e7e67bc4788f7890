"""The ``kept_plans`` table: the last plan the library resolved for each repository and
hook type, so that backups go on while the library is unreachable.

A BeginBackup that resolved its plans from the library keeps them here, in the same
transaction as its run row (`Runs.create_run`: no extra sync). One that cannot reach the
library runs the kept ones if they are young enough (runs/kept_plans.py decides). Only
digests are kept: the content is in the content cache on disk, written there when the
plans were resolved. Secret parameter values are sealed as in a run's post plan
(sealing.py). Rows are replaced, never deleted: an empty plan is kept too, since "no
hooks" is what the library said.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from executor_service.journal.connection import Connection
from executor_service.journal.rows import decode_plan, encode_plan
from executor_service.journal.sealing import Sealer
from shared.stubs import library_pb2

UPSERT_KEPT_PLAN = (
    "INSERT INTO kept_plans (repository_id, hook_type, plan, resolved_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (repository_id, hook_type) DO UPDATE SET plan = excluded.plan, "
    "resolved_at = excluded.resolved_at"
)


@dataclass(frozen=True)
class KeptPlan:
    """A plan as the library resolved it at ``resolved_at`` (epoch seconds)."""

    repository_id: str
    hook_type: library_pb2.HookType.ValueType
    steps: Sequence[library_pb2.PlanStep]
    resolved_at: float


def kept_plan_values(plan: KeptPlan, sealer: Sealer) -> tuple[Any, ...]:
    return (
        plan.repository_id,
        plan.hook_type,
        encode_plan(sealer.seal_plan(plan.steps)),
        plan.resolved_at,
    )


class KeptPlans(Connection):
    async def kept_plans(self, repository_id: str) -> dict[int, KeptPlan]:
        """The kept plans of a repository by hook type (none kept: empty)."""
        rows = await self._read(
            "SELECT hook_type, plan, resolved_at FROM kept_plans WHERE repository_id = ?",
            (repository_id,),
        )
        return {
            row["hook_type"]: KeptPlan(
                repository_id=repository_id,
                hook_type=row["hook_type"],
                steps=self._sealer.unseal_plan(decode_plan(row["plan"])),
                resolved_at=row["resolved_at"],
            )
            for row in rows
        }
