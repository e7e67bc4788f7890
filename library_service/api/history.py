"""RecordExecutions and ListExecutions: unpack, call domain.history, pack."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

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
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    return history.timestamp_to_datetime(field, getattr(message, field))


def execution_to_proto(row: models.Execution) -> library_pb2.Execution:
    """The stored record as the API shows it."""
    return library_pb2.Execution(
        execution_id=row.execution_id,
        script_id=row.script_id,
        script_name=row.script_name,
        digest=row.digest,
        repository_id=row.repository_id,
        job_id=row.job_id,
        run_id=row.run_id,
        hook_type=row.hook_type,  # type: ignore[arg-type]
        status=row.status,  # type: ignore[arg-type]
        exit_code=row.exit_code,
        start_time=timestamp_of(row.start_time),
        end_time=timestamp_of(row.end_time),
        duration_ms=row.duration_ms,
        stdout=library_pb2.CapturedOutput(
            head=row.stdout_head,
            tail=row.stdout_tail,
            total_bytes=row.stdout_total_bytes,
            truncated=row.stdout_truncated,
        ),
        stderr=library_pb2.CapturedOutput(
            head=row.stderr_head,
            tail=row.stderr_tail,
            total_bytes=row.stderr_total_bytes,
            truncated=row.stderr_truncated,
        ),
        trigger=row.trigger,  # type: ignore[arg-type]
        backup_outcome=row.backup_outcome,  # type: ignore[arg-type]
        error_message=row.error_message,
        executor_id=row.executor_id,
    )


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
        async with self.ctx.database.transaction() as session:
            page = await history.list_executions(
                session, filters, request.page_size, request.page_token
            )
        return library_pb2.ListExecutionsResponse(
            executions=[execution_to_proto(row) for row in page.executions],
            next_page_token=page.next_page_token,
        )
