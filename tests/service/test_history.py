"""RecordExecutions and ListExecutions through the generated stubs against real servers,
and the usage figures derived from the stored history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from library_service.domain import history
from shared.stubs import library_pb2
from tests.service.assignments_support import DEADLINE, POST, expect_invalid, rejected

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _execution(execution_id: str, minutes: float = 0, **fields) -> library_pb2.Execution:
    fields.setdefault("script_id", "script-a")
    fields.setdefault("status", library_pb2.EXECUTION_STATUS_SUCCEEDED)
    fields.setdefault("trigger", library_pb2.EXECUTION_TRIGGER_BACKUP)
    return library_pb2.Execution(
        execution_id=execution_id, start_time=_ts(T0 + timedelta(minutes=minutes)), **fields
    )


async def _record(library, *executions: library_pb2.Execution):
    return await library.stub.RecordExecutions(
        library_pb2.RecordExecutionsRequest(executions=list(executions)), timeout=DEADLINE
    )


async def _list(library, **filters) -> library_pb2.ListExecutionsResponse:
    return await library.stub.ListExecutions(
        library_pb2.ListExecutionsRequest(**filters), timeout=DEADLINE
    )


async def _ids(library, **filters) -> list[str]:
    return [e.execution_id for e in (await _list(library, **filters)).executions]


async def _usage(library, *script_ids: str):
    async with library.app.context.database.transaction() as session:
        return await history.usage_for_scripts(session, list(script_ids))


async def test_a_record_comes_back_as_it_was_sent(library) -> None:
    sent = library_pb2.Execution(
        execution_id="exec-1",
        script_id="script-a",
        script_name="dump-db",
        digest="sha256:" + "ab" * 32,
        repository_id="repo-1",
        job_id="job-1",
        run_id="run-1",
        hook_type=POST,
        status=library_pb2.EXECUTION_STATUS_FAILED,
        exit_code=3,
        start_time=_ts(T0),
        end_time=_ts(T0 + timedelta(seconds=2)),
        duration_ms=2000,
        stdout=library_pb2.CapturedOutput(
            head=b"out\x00\xff", tail=b"end", total_bytes=9000, truncated=True
        ),
        stderr=library_pb2.CapturedOutput(head=b"err", total_bytes=3),
        trigger=library_pb2.EXECUTION_TRIGGER_BACKUP,
        backup_outcome=library_pb2.BACKUP_OUTCOME_FAILURE,
        error_message="exit 3",
        executor_id="executor-7",
    )
    response = await _record(library, sent)
    assert (response.recorded_count, response.duplicate_count) == (1, 0)

    (stored,) = (await _list(library)).executions
    assert stored == sent


async def test_the_same_batch_twice_is_stored_and_counted_once(library) -> None:
    batch = [_execution(f"e{i}", minutes=i) for i in range(3)]
    first = await _record(library, *batch)
    again = await _record(library, *batch)

    assert (first.recorded_count, first.duplicate_count) == (3, 0)
    assert (again.recorded_count, again.duplicate_count) == (0, 3)
    assert await _ids(library) == ["e2", "e1", "e0"]
    count, last = (await _usage(library, "script-a"))["script-a"]
    assert count == 3
    assert last == T0 + timedelta(minutes=2)


async def test_a_retry_overlapping_a_stored_batch_stores_only_the_new(library) -> None:
    await _record(library, _execution("e0"), _execution("e1", 1))
    response = await _record(library, _execution("e1", 1), _execution("e2", 2))
    assert (response.recorded_count, response.duplicate_count) == (1, 1)
    assert await _ids(library) == ["e2", "e1", "e0"]


async def test_an_id_repeated_within_a_batch_is_a_duplicate(library) -> None:
    response = await _record(library, _execution("x", 1), _execution("x", 5))
    assert (response.recorded_count, response.duplicate_count) == (1, 1)
    (stored,) = (await _list(library)).executions
    assert stored.start_time == _ts(T0 + timedelta(minutes=1))  # the first occurrence


async def test_concurrent_retries_store_each_record_once(library) -> None:
    batch = [_execution(f"c{i}", minutes=i) for i in range(50)]
    results = await asyncio.gather(*(_record(library, *batch) for _ in range(4)))

    assert sum(r.recorded_count for r in results) == 50
    assert sum(r.duplicate_count for r in results) == 150
    assert (await _usage(library, "script-a"))["script-a"][0] == 50
    assert len(await _ids(library, page_size=1000)) == 50


async def test_overlapping_batches_in_any_order_do_not_deadlock(library) -> None:
    forward = [_execution(f"o{i:02d}", minutes=i) for i in range(40)]
    backward = [*reversed(forward[10:]), *[_execution(f"x{i}", i) for i in range(5)]]
    results = await asyncio.gather(
        *(_record(library, *batch) for batch in (forward, backward, forward, backward))
    )
    assert sum(r.recorded_count for r in results) == 45
    assert len(await _ids(library, page_size=100)) == 45


async def test_a_full_batch_of_1000_is_accepted_and_1001_is_not(library) -> None:
    batch = [_execution(f"b{i:04d}", minutes=i) for i in range(1000)]
    response = await _record(library, *batch)
    assert response.recorded_count == 1000

    await expect_invalid(
        library.stub.RecordExecutions(
            library_pb2.RecordExecutionsRequest(
                executions=[_execution(f"n{i}") for i in range(1001)]
            ),
            timeout=DEADLINE,
        ),
        "executions",
    )
    assert (await _usage(library, "script-a"))["script-a"][0] == 1000


async def test_bad_records_name_their_field_and_nothing_is_stored(library) -> None:
    def far_future() -> library_pb2.Execution:
        record = _execution("far")
        record.start_time.seconds = 253_402_300_800  # year 10000
        return record

    cases = [
        (_execution(""), "execution_id"),
        (_execution("x" * 256), "execution_id"),
        (_execution("s", status=library_pb2.EXECUTION_STATUS_UNSPECIFIED), "status"),
        (_execution("s", status=42), "status"),
        (library_pb2.Execution(execution_id="t", status=1), "start_time"),
        (far_future(), "start_time"),
        (_execution("e", end_time=_ts(T0 - timedelta(seconds=1))), "end_time"),
        (_execution("h", hook_type=9), "hook_type"),
        (_execution("g", trigger=9), "trigger"),
        (_execution("o", backup_outcome=9), "backup_outcome"),
        (_execution("d", duration_ms=-1), "duration_ms"),
        (_execution("r", repository_id="r" * 256), "repository_id"),
    ]
    for bad, field in cases:
        # The bad record is the fourth of a batch: the good ones must not be stored either.
        good = [_execution(f"ok-{field}-{i}") for i in range(3)]
        await expect_invalid(
            library.stub.RecordExecutions(
                library_pb2.RecordExecutionsRequest(executions=[*good, bad]), timeout=DEADLINE
            ),
            f"executions[3].{field}",
        )
    assert await _ids(library) == []


async def test_an_empty_batch_records_nothing(library) -> None:
    response = await _record(library)
    assert (response.recorded_count, response.duplicate_count) == (0, 0)


async def test_list_is_newest_first_across_pages(library) -> None:
    # Three share a start time: they come newest-id first, and no page drops or repeats one.
    records = [_execution(f"p{i:02d}", minutes=i) for i in range(7)]
    records += [_execution(f"same-{c}", minutes=3.5) for c in "abc"]
    await _record(library, *records)

    seen, token, pages = [], "", 0
    while True:
        response = await _list(library, page_size=3, page_token=token)
        pages += 1
        seen += [e.execution_id for e in response.executions]
        token = response.next_page_token
        if not token:
            break

    assert seen == ["p06", "p05", "p04", "same-c", "same-b", "same-a", "p03", "p02", "p01", "p00"]
    assert pages == 4


async def test_new_records_do_not_shift_the_next_page(library) -> None:
    await _record(library, *[_execution(f"k{i}", minutes=i) for i in range(4)])
    first = await _list(library, page_size=2)
    await _record(library, _execution("newer", minutes=60))
    second = await _list(library, page_size=2, page_token=first.next_page_token)
    assert [e.execution_id for e in second.executions] == ["k1", "k0"]


async def test_list_filters(library) -> None:
    await _record(
        library,
        _execution("a1", 1, script_id="A", repository_id="r1", job_id="j1", run_id="u1"),
        _execution(
            "a2",
            2,
            script_id="A",
            repository_id="r2",
            job_id="j1",
            run_id="u2",
            status=library_pb2.EXECUTION_STATUS_FAILED,
        ),
        _execution(
            "b1",
            3,
            script_id="B",
            repository_id="r1",
            job_id="j2",
            run_id="u3",
            status=library_pb2.EXECUTION_STATUS_TIMED_OUT,
        ),
        _execution("b2", 4, script_id="B", repository_id="r1", job_id="j2", run_id="u3"),
    )
    assert await _ids(library, script_id="A") == ["a2", "a1"]
    assert await _ids(library, repository_id="r1") == ["b2", "b1", "a1"]
    assert await _ids(library, job_id="j2") == ["b2", "b1"]
    assert await _ids(library, run_id="u3") == ["b2", "b1"]
    assert await _ids(library, status=library_pb2.EXECUTION_STATUS_FAILED) == ["a2"]
    assert await _ids(
        library,
        script_id="B",
        repository_id="r1",
        run_id="u3",
        status=library_pb2.EXECUTION_STATUS_TIMED_OUT,
    ) == ["b1"]
    # after is inclusive, before exclusive.
    window = {
        "start_time_after": _ts(T0 + timedelta(minutes=2)),
        "start_time_before": _ts(T0 + timedelta(minutes=4)),
    }
    assert await _ids(library, **window) == ["b1", "a2"]
    assert await _ids(library, start_time_after=_ts(T0 + timedelta(minutes=4))) == ["b2"]
    assert await _ids(library, start_time_before=_ts(T0 + timedelta(minutes=2))) == ["a1"]
    same = _ts(T0 + timedelta(minutes=3))
    assert await _ids(library, start_time_after=same, start_time_before=same) == []


async def test_bad_list_requests_name_the_field(library) -> None:
    await _record(library, *[_execution(f"q{i}", i) for i in range(3)])
    first = await _list(library, page_size=1)
    bad_token_payloads = ["%%%", "bm90LWpzb24", first.next_page_token[:-3] + "AAA"]
    cases = [
        (
            {"start_time_after": _ts(T0 + timedelta(minutes=1)), "start_time_before": _ts(T0)},
            "start_time_after",
        ),
        ({"status": 77}, "status"),
        ({"page_size": -1}, "page_size"),
        ({"page_token": first.next_page_token, "script_id": "other"}, "page_token"),
        *[({"page_token": token}, "page_token") for token in bad_token_payloads],
    ]
    for filters, field in cases:
        await expect_invalid(
            library.stub.ListExecutions(
                library_pb2.ListExecutionsRequest(**filters), timeout=DEADLINE
            ),
            field,
        )
    far = Timestamp(seconds=253_402_300_800)
    found = await rejected(
        library.stub.ListExecutions(
            library_pb2.ListExecutionsRequest(start_time_after=far), timeout=DEADLINE
        )
    )
    assert found.code == grpc.StatusCode.INVALID_ARGUMENT


async def test_usage_leaves_out_test_runs(library) -> None:
    await _record(
        library,
        _execution("u1", 1),
        _execution("u2", 2),
        _execution("t1", 9, trigger=library_pb2.EXECUTION_TRIGGER_TEST),
        _execution("w1", 3, script_id="B", trigger=library_pb2.EXECUTION_TRIGGER_WINDOW),
    )
    usage = await _usage(library, "script-a", "B", "never-ran")
    assert usage == {
        "script-a": (2, T0 + timedelta(minutes=2)),
        "B": (1, T0 + timedelta(minutes=3)),
        "never-ran": (0, None),
    }
    async with library.app.context.database.transaction() as session:
        recent = await history.recent_for_script(session, "script-a", 2)
    # Tests are history, so they are among the recent executions.
    assert [r.execution_id for r in recent] == ["t1", "u2"]


async def test_get_script_reports_usage_once_per_execution(library) -> None:
    """Through GetScript, once the scripts part serves it."""
    from tests.service.assignments_support import make_script

    script = await make_script(library, "counted")
    batch = [_execution(f"g{i}", i, script_id=script.id) for i in range(2)]
    await _record(library, *batch)
    await _record(library, *batch)
    try:
        response = await library.stub.GetScript(
            library_pb2.GetScriptRequest(id=script.id), timeout=DEADLINE
        )
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.UNIMPLEMENTED  # not served yet
        assert (await _usage(library, script.id))[script.id][0] == 2
        return
    assert response.script.usage_count == 2
    assert response.script.last_used_time == _ts(T0 + timedelta(minutes=1))
