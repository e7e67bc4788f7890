"""script_run_tracker: one row per run of a tracked maintenance script

Written by library_service.maintenance.framework (the BaseScript framework). A row starts pending and ends
success, failed or rolled_back; a pending row whose owner died (lock free, or lease not
renewed) is turned into failed ("interrupted") by the next caller. `details` holds what a
run wants to remember for its rollback, e.g. the ids it created.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "script_run_tracker",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("script_name", sa.String(255), nullable=False),
        # pending, success, failed, rolled_back
        sa.Column("status", sa.String(32), nullable=False),
        # run or rollback: a rollback is a row of its own; it marks the run it undid.
        sa.Column("action", sa.String(32), nullable=False, server_default="run"),
        sa.Column("forced", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("host", sa.String(255), nullable=False, server_default=""),
        sa.Column("pid", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("checksum", sa.String(71), nullable=False, server_default=""),
        sa.Column("output", sa.Text(), nullable=False, server_default=""),
        sa.Column("error", sa.Text(), nullable=False, server_default=""),
        sa.Column("details", sa.JSON(), nullable=True),
    )
    op.create_index(
        "ix_script_run_tracker_name_started", "script_run_tracker", ["script_name", "started_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_script_run_tracker_name_started", table_name="script_run_tracker")
    op.drop_table("script_run_tracker")
