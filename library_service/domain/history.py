"""Execution history: recording what the executors ran, and reading it back.

Recording is idempotent by ``execution_id`` because executors retry (they keep records in
a local journal until the library acknowledges them): the insert itself skips ids that are
already stored (``ON CONFLICT DO NOTHING`` / ``INSERT OR IGNORE``), so two concurrent
retries of the same batch cannot store, or count, a record twice. Usage (count, last use)
is derived from these rows, never kept as a counter that could drift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import (
    CursorResult,
    Row,
    Table,
    TextClause,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from library_service.domain.pagination import decode_page_token, encode_page_token, page_size_of
from library_service.domain.validation import MAX_NAME_LENGTH
from library_service.store import models
from shared.errors import InvalidArgument, Violations
from shared.hook_policy import check_enum
from shared.stubs import library_pb2

MAX_RECORDS_PER_CALL = 1000
_CHUNK = 500  # rows per INSERT: 500 x 29 columns stays under every bound-parameter limit
# Test runs (TestScript) are history but not use: they do not count towards usage.
NOT_USAGE = library_pb2.EXECUTION_TRIGGER_TEST


def as_utc(moment: datetime | None) -> datetime | None:
    """Aware UTC datetime. SQLite hands back naive datetimes; everything we store is UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799


def timestamp_to_datetime(field: str, stamp: Timestamp) -> datetime:
    """An aware UTC datetime; a Timestamp outside its documented range is bad input."""
    if not (_MIN_SECONDS <= stamp.seconds <= _MAX_SECONDS and 0 <= stamp.nanos < 10**9):
        raise InvalidArgument(field, "is not a valid timestamp (years 1-9999)")
    return stamp.ToDatetime(tzinfo=UTC)


# --- reading, for scripts (GetScript / ListScripts) -------------------------------------


async def usage_for_scripts(
    session: AsyncSession, script_ids: list[str]
) -> dict[str, tuple[int, datetime | None]]:
    """``{script_id: (usage_count, last_used_at)}`` for each id asked for, in one grouped
    query. Test executions are left out; an id never executed maps to ``(0, None)``."""
    usage: dict[str, tuple[int, datetime | None]] = {sid: (0, None) for sid in script_ids}
    if not script_ids:
        return usage
    E = models.Execution
    rows = await session.execute(
        select(E.script_id, func.count(), func.max(E.start_time))
        .where(E.script_id.in_(set(script_ids)), E.trigger != NOT_USAGE)
        .group_by(E.script_id)
    )
    for script_id, count, last in rows:
        usage[script_id] = (int(count), as_utc(last))
    return usage


async def recent_for_script(
    session: AsyncSession, script_id: str, limit: int
) -> list[models.Execution]:
    """A script's newest executions (tests included: they are history), newest first."""
    E = models.Execution
    result = await session.scalars(
        select(E)
        .where(E.script_id == script_id)
        .order_by(E.start_time.desc(), E.execution_id.desc())
        .limit(limit)
    )
    return list(result)


# --- recording ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordResult:
    recorded: int
    duplicates: int


def _check_execution(path: str, record: library_pb2.Execution, problems: Violations) -> None:
    """Collects every problem of one record under its path (``executions[3].status``)."""
    if not record.execution_id:
        problems.add(f"{path}.execution_id", "is required")
    elif len(record.execution_id) > MAX_NAME_LENGTH:
        problems.add(f"{path}.execution_id", f"must be at most {MAX_NAME_LENGTH} characters")
    enums = (
        ("status", library_pb2.ExecutionStatus.DESCRIPTOR, False),
        ("hook_type", library_pb2.HookType.DESCRIPTOR, True),
        ("trigger", library_pb2.ExecutionTrigger.DESCRIPTOR, True),
        ("backup_outcome", library_pb2.BackupOutcome.DESCRIPTOR, True),
        ("plan_source", library_pb2.PlanSource.DESCRIPTOR, True),
    )
    for name, descriptor, optional in enums:
        try:
            check_enum(
                f"{path}.{name}", getattr(record, name), descriptor, allow_unspecified=optional
            )
        except InvalidArgument as error:
            problems.items.extend(error.violations)
    start = end = None
    if not record.HasField("start_time"):
        problems.add(f"{path}.start_time", "is required")
    else:
        start = _time_or_none(f"{path}.start_time", record.start_time, problems)
    if record.HasField("end_time"):
        end = _time_or_none(f"{path}.end_time", record.end_time, problems)
    if record.HasField("plan_resolve_time"):
        _time_or_none(f"{path}.plan_resolve_time", record.plan_resolve_time, problems)
    if start is not None and end is not None and end < start:
        problems.add(f"{path}.end_time", "must not be before start_time")
    if record.duration_ms < 0:
        problems.add(f"{path}.duration_ms", "must not be negative")
    for name in ("script_id", "script_name", "repository_id", "job_id", "run_id", "executor_id"):
        if len(getattr(record, name)) > MAX_NAME_LENGTH:
            problems.add(f"{path}.{name}", f"must be at most {MAX_NAME_LENGTH} characters")
    if len(record.digest) > models.DIGEST_LENGTH:
        problems.add(f"{path}.digest", f"must be at most {models.DIGEST_LENGTH} characters")


def _time_or_none(field: str, stamp: Timestamp, problems: Violations) -> datetime | None:
    try:
        return timestamp_to_datetime(field, stamp)
    except InvalidArgument as error:
        problems.items.extend(error.violations)
        return None


def _sqlite_insert() -> TextClause:
    """The SQLite insert of one record, skipping a stored id, as a text statement with
    the columns' types: SQLAlchemy does not cache the compiled form of SQLite's own
    ``insert`` (it compiled it again on every call); a text statement it does, and the
    types keep every value stored exactly as before."""
    table = cast(Table, models.Execution.__table__)  # declared FromClause; a Table at runtime
    statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=["execution_id"])
    sql = str(statement.compile(dialect=sqlite.dialect(paramstyle="named")))
    return text(sql).bindparams(*(bindparam(column.key, type_=column.type) for column in table.c))


_SQLITE_INSERT = _sqlite_insert()


def _row_of(record: library_pb2.Execution, now: datetime) -> dict[str, Any]:
    def when(field: Literal["start_time", "end_time", "plan_resolve_time"]) -> datetime | None:
        if not record.HasField(field):
            return None
        return getattr(record, field).ToDatetime(tzinfo=UTC)

    return {
        "execution_id": record.execution_id,
        "script_id": record.script_id,
        "script_name": record.script_name,
        "digest": record.digest,
        "repository_id": record.repository_id,
        "job_id": record.job_id,
        "run_id": record.run_id,
        "hook_type": record.hook_type,
        "status": record.status,
        "exit_code": record.exit_code,
        "trigger": record.trigger,
        "backup_outcome": record.backup_outcome,
        "start_time": when("start_time"),
        "end_time": when("end_time"),
        "duration_ms": record.duration_ms,
        "stdout_head": record.stdout.head,
        "stdout_tail": record.stdout.tail,
        "stdout_total_bytes": record.stdout.total_bytes,
        "stdout_truncated": record.stdout.truncated,
        "stderr_head": record.stderr.head,
        "stderr_tail": record.stderr.tail,
        "stderr_total_bytes": record.stderr.total_bytes,
        "stderr_truncated": record.stderr.truncated,
        "error_message": record.error_message,
        "executor_id": record.executor_id,
        "recorded_at": now,
        "plan_source": record.plan_source,
        "plan_resolve_time": when("plan_resolve_time"),
    }


async def record_executions(
    session: AsyncSession, records: Sequence[library_pb2.Execution]
) -> RecordResult:
    """Stores a batch of execution records, all or nothing.

    Every record is validated before anything is written, so one bad record rejects the
    call and stores nothing. Ids already stored, and ids repeated within the batch, are
    duplicates: kept once, reported in ``duplicates``.
    """
    if len(records) > MAX_RECORDS_PER_CALL:
        raise InvalidArgument(
            "executions", f"at most {MAX_RECORDS_PER_CALL} records per call, got {len(records)}"
        )
    problems = Violations()
    for index, record in enumerate(records):
        _check_execution(f"executions[{index}]", record, problems)
    problems.raise_if_any()
    if not records:
        return RecordResult(0, 0)

    now = datetime.now(UTC)
    # The first occurrence of an id within the batch wins, as a retry would.
    unique: dict[str, dict[str, Any]] = {}
    for record in records:
        unique.setdefault(record.execution_id, _row_of(record, now))
    # Inserted in id order: two overlapping batches then take their row locks in the same
    # order on PostgreSQL and cannot deadlock each other.
    rows = [unique[key] for key in sorted(unique)]

    if session.bind.dialect.name == "sqlite":
        # One statement, compiled once and cached, run over every row (executemany): a
        # multi-row VALUES is a new statement for each batch size, and compiling its
        # 2,700 parameters cost more than everything else in a batch of 100.
        # sqlite3 sums the rows each execution changed, and a conflict changes none, so
        # the rowcount is exactly the rows inserted.
        # An INSERT's result is a CursorResult (rowcount); execute() is declared as Result.
        result = cast(CursorResult[Any], await session.execute(_SQLITE_INSERT, rows))
        return RecordResult(recorded=result.rowcount, duplicates=len(records) - result.rowcount)
    table = cast(Table, models.Execution.__table__)  # declared FromClause; a Table at runtime
    recorded = 0
    # One multi-row statement per chunk (not an executemany, whose rowcount asyncpg does
    # not report): its rowcount is exactly the rows inserted, conflicts excluded.
    # Chunks keep a statement under the bound-parameter limits (SQLite 32766, PG 32767).
    for start in range(0, len(rows), _CHUNK):
        statement = (
            postgresql.insert(table)
            .values(rows[start : start + _CHUNK])
            .on_conflict_do_nothing(index_elements=["execution_id"])
        )
        result = cast(CursorResult[Any], await session.execute(statement))
        recorded += result.rowcount
    return RecordResult(recorded=recorded, duplicates=len(records) - recorded)


# --- the activity feed -------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionFilter:
    """ListExecutions filters; empty strings and None mean "any"."""

    script_id: str = ""
    repository_id: str = ""
    job_id: str = ""
    run_id: str = ""
    status: int = 0
    start_time_after: datetime | None = None  # inclusive
    start_time_before: datetime | None = None  # exclusive

    def check(self) -> None:
        check_enum(
            "status", self.status, library_pb2.ExecutionStatus.DESCRIPTOR, allow_unspecified=True
        )
        if (
            self.start_time_after is not None
            and self.start_time_before is not None
            and self.start_time_after > self.start_time_before
        ):
            raise InvalidArgument("start_time_after", "must not be after start_time_before")

    def fingerprint(self) -> Mapping[str, Any]:
        return {
            "script_id": self.script_id,
            "repository_id": self.repository_id,
            "job_id": self.job_id,
            "run_id": self.run_id,
            "status": self.status,
            "after": self.start_time_after.isoformat() if self.start_time_after else "",
            "before": self.start_time_before.isoformat() if self.start_time_before else "",
        }


@dataclass(frozen=True)
class ExecutionPage:
    # Rows of the executions table: each has the attributes of a models.Execution.
    executions: list[Row[Any]]
    next_page_token: str


def _key_of(row: Row[Any]) -> list[Any]:
    moment = as_utc(row.start_time)
    assert moment is not None
    # Microseconds since the epoch: exact, unlike a float timestamp.
    micros = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // _MICROSECOND
    return [micros, row.execution_id]


_MICROSECOND = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)


def _moment_of_key(micros: Any) -> datetime:
    if not isinstance(micros, int):
        raise InvalidArgument("page_token", "is not a token this server issued")
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + micros * _MICROSECOND
    except OverflowError as error:
        raise InvalidArgument("page_token", "is not a token this server issued") from error


async def list_executions(
    session: AsyncSession, filters: ExecutionFilter, page_size: int, page_token: str
) -> ExecutionPage:
    """The activity feed: newest first (start_time desc, execution_id desc), keyset-paged
    so a page stays cheap however deep it is and new records do not shift later pages."""
    filters.check()
    size = page_size_of(page_size)
    fingerprint = dict(filters.fingerprint())
    last = decode_page_token(page_token, fingerprint)

    E = models.Execution
    # The table's columns, not the mapped class: rows come back as plain tuples, without
    # building (and tracking) an ORM object per record only to copy it into a message.
    query = select(*E.__table__.c)
    for column, value in (
        (E.script_id, filters.script_id),
        (E.repository_id, filters.repository_id),
        (E.job_id, filters.job_id),
        (E.run_id, filters.run_id),
        (E.status, filters.status),
    ):
        if value:
            query = query.where(column == value)
    if filters.start_time_after is not None:
        query = query.where(E.start_time >= filters.start_time_after)
    if filters.start_time_before is not None:
        query = query.where(E.start_time < filters.start_time_before)
    if last is not None:
        if len(last) != 2 or not isinstance(last[1], str):
            raise InvalidArgument("page_token", "is not a token this server issued")
        moment, execution_id = _moment_of_key(last[0]), last[1]
        query = query.where(
            or_(
                E.start_time < moment,
                and_(E.start_time == moment, E.execution_id < execution_id),
            )
        )
    query = query.order_by(E.start_time.desc(), E.execution_id.desc()).limit(size + 1)
    rows = list((await session.execute(query)).all())
    token = ""
    if len(rows) > size:
        rows = rows[:size]
        token = encode_page_token(_key_of(rows[-1]), fingerprint)
    return ExecutionPage(rows, token)
