"""The library's tables. The schema is created only by Alembic migrations
(library_service/migrations); these classes describe it for queries.

Content is stored once per digest (script_contents) and referenced by versions, so history
and GetScriptContent keep working after a script is deleted. Executions carry the names and
digests they ran with and have no foreign key to scripts: history survives the script.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAME_LENGTH = 255
ID_LENGTH = 36
DIGEST_LENGTH = 71  # "sha256:" + 64 hex


class Base(DeclarativeBase):
    pass


class ScriptContent(Base):
    """Immutable bytes of a version, addressed by their sha256 digest."""

    __tablename__ = "script_contents"

    digest: Mapped[str] = mapped_column(String(DIGEST_LENGTH), primary_key=True)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Script(Base):
    __tablename__ = "scripts"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, unique=True)
    # File name stem of the mirror file; made by the server only.
    slug: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, unique=True)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    category: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    current_digest: Mapped[str] = mapped_column(
        String(DIGEST_LENGTH), ForeignKey("script_contents.digest"), nullable=False
    )
    default_timeout_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    default_run_on: Mapped[int] = mapped_column(Integer, nullable=False)
    is_template: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    template_name: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    template_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Declared parameters: [{"name", "type", "default_value", "has_default", "description"}].
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    etag: Mapped[str] = mapped_column(String(64), nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        Index("ix_scripts_category_name", "category", "name"),
        Index("ix_scripts_is_template_name", "is_template", "name"),
    )


class ScriptVersion(Base):
    __tablename__ = "script_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    script_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("scripts.id", ondelete="CASCADE"), nullable=False
    )
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    digest: Mapped[str] = mapped_column(
        String(DIGEST_LENGTH), ForeignKey("script_contents.digest"), nullable=False
    )
    author: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (UniqueConstraint("script_id", "number", name="uq_script_versions_number"),)


class Assignment(Base):
    __tablename__ = "assignments"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    repository_id: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    script_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("scripts.id", ondelete="CASCADE"), nullable=False
    )
    hook_type: Mapped[int] = mapped_column(Integer, nullable=False)
    execution_order: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    custom_timeout_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    custom_run_on: Mapped[int | None] = mapped_column(Integer, nullable=True)
    on_error: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # name -> value; secret values are stored encrypted ("enc:v1:<fernet token>").
    parameter_values: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        UniqueConstraint(
            "repository_id", "script_id", "hook_type", name="uq_assignments_repo_script_hook"
        ),
        Index("ix_assignments_chain", "repository_id", "hook_type", "execution_order", "id"),
        Index("ix_assignments_script", "script_id"),
    )


class Execution(Base):
    __tablename__ = "executions"

    execution_id: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    script_id: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False, default="")
    script_name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, default="")
    digest: Mapped[str] = mapped_column(String(DIGEST_LENGTH), nullable=False, default="")
    repository_id: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, default="")
    job_id: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, default="")
    run_id: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, default="")
    hook_type: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[int] = mapped_column(Integer, nullable=False)
    exit_code: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    trigger: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    backup_outcome: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    duration_ms: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    stdout_head: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, default=b"")
    stdout_tail: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, default=b"")
    stdout_total_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    stdout_truncated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    stderr_head: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, default=b"")
    stderr_tail: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, default=b"")
    stderr_total_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    stderr_truncated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    error_message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    executor_id: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, default="")
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # PlanSource: whether the step's plan came from the library or the executor's kept
    # copy (the library was unreachable), and when the library resolved it.
    plan_source: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    plan_resolve_time: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )

    __table_args__ = (
        # The activity feed: newest first, ties by id, optionally narrowed.
        Index("ix_executions_feed", "start_time", "execution_id"),
        Index("ix_executions_script_feed", "script_id", "start_time"),
        Index("ix_executions_repository_feed", "repository_id", "start_time"),
        Index("ix_executions_job", "job_id"),
        Index("ix_executions_run", "run_id"),
    )


class MaintenanceWindow(Base):
    __tablename__ = "maintenance_windows"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False, unique=True)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    pre_script_ids: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    post_script_ids: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    cron_expression: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    etag: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
