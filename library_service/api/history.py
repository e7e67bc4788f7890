"""RecordExecutions and ListExecutions: unpack, call domain.history, pack."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Row

from library_service.context import LibraryContext
from library_service.domain import history
from library_service.store import models
from shared.stubs import library_pb2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)


def timestamp_of(moment: datetime | None) -> Timestamp | None:
    """A stored datetime as a Timestamp; None (field left unset) for None. Naive means UTC
    (SQLite returns naive datetimes). By arithmetic: a page of scripts has three per row,
    and ``Timestamp.FromDatetime`` costs more than the rest of the row."""
    if moment is None:
        return None
    since = moment - (_NAIVE_EPOCH if moment.tzinfo is None else _EPOCH)
    return Timestamp(seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000)


def datetime_of(message: object, field: str) -> datetime | None:
    """An aware UTC datetime from a Timestamp field, None when the field is unset;
    INVALID_ARGUMENT naming the field when it is out of range."""
    if not message.HasField(field):  # type: ignore[attr-defined]  # any generated message with this Timestamp field
        return None
    return history.timestamp_to_datetime(field, getattr(message, field))


# The executions table's columns in table order: a Row of ``select(*table.c)`` unpacks
# in this order (an added column makes the unpacking below fail, never shift).
_EXECUTION_COLUMNS = tuple(column.key for column in models.Execution.__table__.c)


def execution_to_proto(row: models.Execution | Row[Any]) -> library_pb2.Execution:
    """The stored record as the API shows it: an ORM object, or a Row of all the table's
    columns (ListExecutions), which is unpacked by position: a Row's attribute lookup
    cost a microsecond per field, a quarter of a page's time.

    Scalars go to the constructor; the timestamps and outputs are filled in place: a
    Timestamp or CapturedOutput handed to the constructor is built and then copied."""
    values = row if isinstance(row, Row) else [getattr(row, key) for key in _EXECUTION_COLUMNS]
    (
        execution_id,
        script_id,
        script_name,
        digest,
        repository_id,
        job_id,
        run_id,
        hook_type,
        status,
        exit_code,
        trigger,
        backup_outcome,
        start_time,
        end_time,
        duration_ms,
        stdout_head,
        stdout_tail,
        stdout_total_bytes,
        stdout_truncated,
        stderr_head,
        stderr_tail,
        stderr_total_bytes,
        stderr_truncated,
        error_message,
        executor_id,
        _recorded_at,
        plan_source,
        plan_resolve_time,
    ) = values
    message = library_pb2.Execution(
        execution_id=execution_id,
        script_id=script_id,
        script_name=script_name,
        digest=digest,
        repository_id=repository_id,
        job_id=job_id,
        run_id=run_id,
        hook_type=hook_type,
        status=status,
        exit_code=exit_code,
        duration_ms=duration_ms,
        trigger=trigger,
        backup_outcome=backup_outcome,
        error_message=error_message,
        executor_id=executor_id,
        plan_source=plan_source,
    )
    _set_time(message.start_time, start_time)
    if plan_resolve_time is not None:
        _set_time(message.plan_resolve_time, plan_resolve_time)
    if end_time is not None:
        _set_time(message.end_time, end_time)
    _set_output(message.stdout, stdout_head, stdout_tail, stdout_total_bytes, stdout_truncated)
    _set_output(message.stderr, stderr_head, stderr_tail, stderr_total_bytes, stderr_truncated)
    return message


def _set_time(stamp: Timestamp, moment: datetime) -> None:
    """As timestamp_of, into a field of a message."""
    since = moment - (_NAIVE_EPOCH if moment.tzinfo is None else _EPOCH)
    stamp.seconds = since.days * 86_400 + since.seconds
    stamp.nanos = since.microseconds * 1000


def _set_output(
    output: library_pb2.CapturedOutput, head: bytes, tail: bytes, total: int, truncated: bool
) -> None:
    """A stored output into a field, which is set even when empty (as it always was)."""
    output.SetInParent()
    if head:
        output.head = head
    if tail:
        output.tail = tail
    if total:
        output.total_bytes = total
    if truncated:
        output.truncated = truncated


class HistoryRpcs:
    """Execution history: the executors write it, the activity feed reads it."""

    def __init__(self, ctx: LibraryContext) -> None:
        self.ctx = ctx

    async def RecordExecutions(
        self, request: library_pb2.RecordExecutionsRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.RecordExecutionsResponse:
        """Stores a batch atomically; ids already stored count as duplicates."""
        async with self.ctx.database.transaction() as session:
            result = await history.record_executions(session, request.executions)
        return library_pb2.RecordExecutionsResponse(
            recorded_count=result.recorded, duplicate_count=result.duplicates
        )

    async def ListExecutions(
        self, request: library_pb2.ListExecutionsRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.ListExecutionsResponse:
        """The activity feed, newest first."""
        filters = history.ExecutionFilter(
            script_id=request.script_id,
            repository_id=request.repository_id,
            job_id=request.job_id,
            run_id=request.run_id,
            status=request.status,
            start_time_after=datetime_of(request, "start_time_after"),
            start_time_before=datetime_of(request, "start_time_before"),
        )
        # One read: on SQLite it need not wait for RecordExecutions' write lock.
        async with self.ctx.database.reading() as session:
            page = await history.list_executions(
                session, filters, request.page_size, request.page_token
            )
        return library_pb2.ListExecutionsResponse(
            executions=[execution_to_proto(row) for row in page.executions],
            next_page_token=page.next_page_token,
        )
