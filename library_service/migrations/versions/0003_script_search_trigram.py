"""trigram indexes for the ListScripts free-text query (PostgreSQL only)

ListScripts matches its query as a case-insensitive substring of name and description
(ILIKE '%text%'), which a b-tree cannot serve. pg_trgm GIN indexes can: a query over
100,000 scripts stays within milliseconds instead of a sequential scan. SQLite has no
such index; the embedded single-machine set-up does not need one, so this is a no-op there.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_scripts_name_trgm": "name",
    "ix_scripts_description_trgm": "description",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Needs a superuser or a database owner on PostgreSQL 13+ (pg_trgm is trusted).
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, column in INDEXES.items():
        op.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON scripts USING gin ({column} gin_trgm_ops)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    # The extension stays: other objects may use it, and it is harmless.
