"""executions.plan_source and plan_resolve_time: where a step's plan came from

An executor that cannot reach the library at BeginBackup may run the plans it kept from
the last run it resolved (issue 12); its records say so, and the history keeps it:
``plan_source`` is the PlanSource enum (0 for records of older executors and of runs
that are not backups), ``plan_resolve_time`` when the library resolved the plan.

Adding a column with a constant default is a catalog change on PostgreSQL 11+ and on
SQLite: no rewrite of a large executions table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as table:
        table.add_column(sa.Column("plan_source", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("plan_resolve_time", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("executions") as table:
        table.drop_column("plan_resolve_time")
        table.drop_column("plan_source")
