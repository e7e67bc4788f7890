"""Which executions a retention policy removes, as SQL both backends run.

Per script (its id; executions without one, such as legacy inline hooks, by script
name), the newest ``keep_last`` are always kept; of the rest, those that started before
``cutoff`` go. With only ``keep_last`` every older one goes; with only ``cutoff`` every
one that started before it goes, however few remain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, delete, func, literal, select

from library_service.store import models
from library_service.store.database import Database


@dataclass(frozen=True)
class Policy:
    keep_last: int | None = None
    cutoff: datetime | None = None


def doomed(policy: Policy) -> Select:
    """The executions the policy removes: (execution_id, script_name)."""
    E = models.Execution
    group = func.coalesce(func.nullif(E.script_id, ""), literal("name:").concat(E.script_name))
    rank = (
        func.row_number()
        .over(partition_by=group, order_by=(E.start_time.desc(), E.execution_id.desc()))
        .label("rank")
    )
    ranked = select(E.execution_id, E.script_name, E.start_time, rank).subquery()
    conditions = []
    if policy.keep_last is not None:
        conditions.append(ranked.c.rank > policy.keep_last)
    if policy.cutoff is not None:
        conditions.append(ranked.c.start_time < policy.cutoff)
    return select(ranked.c.execution_id, ranked.c.script_name).where(and_(*conditions))


async def count(db: Database, policy: Policy) -> dict[str, int]:
    """How many executions the policy removes, per script name."""
    query = doomed(policy).subquery()
    async with db.transaction() as session:
        rows = await session.execute(
            select(query.c.script_name, func.count()).group_by(query.c.script_name)
        )
        return {name: int(number) for name, number in rows}


async def delete_batch(db: Database, policy: Policy, batch_size: int) -> int:
    """Delete up to batch_size doomed executions in one short transaction; how many."""
    E = models.Execution
    async with db.transaction() as session:
        ids = list(
            await session.scalars(
                select(doomed(policy).subquery().c.execution_id).limit(batch_size)
            )
        )
        if ids:
            await session.execute(delete(E).where(E.execution_id.in_(ids)))
        return len(ids)
