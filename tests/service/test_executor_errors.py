"""Requests that cannot start are RPC errors with a code and the field at fault."""

from __future__ import annotations

import grpc
import pytest

from shared.error_details import details_of
from shared.stubs import executor_pb2, library_pb2
from tests.service.executor_support import (
    DEADLINE,
    PRE,
    SUCCESS,
    mark_script,
    open_executor,
    summary_of,
    unique,
)


@pytest.fixture
def database_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"


async def _error(call) -> grpc.RpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        result = call
        if hasattr(result, "__aiter__"):
            async for _ in result:
                pass
        else:
            await result
    return caught.value


async def test_unknown_run_is_not_found_everywhere(executor) -> None:
    stub = executor.stub
    for call in (
        stub.EndBackup(
            executor_pb2.EndBackupRequest(run_id="nope", outcome=SUCCESS), timeout=DEADLINE
        ),
        stub.RenewBackup(executor_pb2.RenewBackupRequest(run_id="nope"), timeout=DEADLINE),
        stub.GetBackupRun(executor_pb2.GetBackupRunRequest(run_id="nope"), timeout=DEADLINE),
    ):
        error = await _error(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert details_of(error).reason == "NOT_FOUND"


async def test_second_begin_for_a_repository_is_failed_precondition(executor) -> None:
    repo = unique("repo")
    first = await executor.begin(repo)
    run_id = first[0].run_id
    error = await _error(
        executor.stub.BeginBackup(
            executor_pb2.BeginBackupRequest(repository_id=repo), timeout=DEADLINE
        )
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details_of(error).metadata["run_id"] == run_id
    # Another repository is free; once ended, the first is free again.
    summary_of(await executor.begin(unique("other")))
    await executor.end(run_id, SUCCESS)
    summary_of(await executor.begin(repo))


async def test_bad_begin_requests_name_every_bad_field(executor) -> None:
    error = await _error(
        executor.stub.BeginBackup(
            executor_pb2.BeginBackupRequest(
                repository_id="",
                lease_seconds=10,
                variables={"bad-name": "x", "HOOKSHELF_RUN_ID": "spoof", "OK": "fine"},
            ),
            timeout=DEADLINE,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = details_of(error).field_violations
    assert set(fields) == {
        "repository_id",
        "lease_seconds",
        "variables[bad-name]",
        "variables[HOOKSHELF_RUN_ID]",
    }
    assert "reserved" in fields["variables[HOOKSHELF_RUN_ID]"]

    error = await _error(
        executor.stub.BeginBackup(
            executor_pb2.BeginBackupRequest(repository_id="r", lease_seconds=86_401),
            timeout=DEADLINE,
        )
    )
    assert set(details_of(error).field_violations) == {"lease_seconds"}


async def test_bad_end_and_renew_requests(executor) -> None:
    repo = unique("repo")
    run_id = (await executor.begin(repo))[0].run_id
    for outcome in (
        library_pb2.BACKUP_OUTCOME_UNSPECIFIED,
        library_pb2.BACKUP_OUTCOME_ABORTED,
        library_pb2.BACKUP_OUTCOME_SKIPPED,
        99,
    ):
        error = await _error(
            executor.stub.EndBackup(
                executor_pb2.EndBackupRequest(run_id=run_id, outcome=outcome), timeout=DEADLINE
            )
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert set(details_of(error).field_violations) == {"outcome"}, outcome
    error = await _error(
        executor.stub.EndBackup(
            executor_pb2.EndBackupRequest(run_id=run_id, outcome=SUCCESS, variables={"a": "b"}),
            timeout=DEADLINE,
        )
    )
    assert set(details_of(error).field_violations) == {"variables[a]"}
    error = await _error(
        executor.stub.RenewBackup(
            executor_pb2.RenewBackupRequest(run_id=run_id, lease_seconds=59), timeout=DEADLINE
        )
    )
    assert set(details_of(error).field_violations) == {"lease_seconds"}
    error = await _error(
        executor.stub.GetBackupRun(executor_pb2.GetBackupRunRequest(run_id=""), timeout=DEADLINE)
    )
    assert set(details_of(error).field_violations) == {"run_id"}

    # A valid renewal moves the lease; after the end there is nothing to renew.
    before = (await executor.get_run(run_id)).lease_expire_time.ToSeconds()
    executor.clock.advance(30)
    renewed = await executor.stub.RenewBackup(
        executor_pb2.RenewBackupRequest(run_id=run_id, lease_seconds=3600), timeout=DEADLINE
    )
    assert renewed.lease_expire_time.ToSeconds() >= before + 3000
    await executor.end(run_id, SUCCESS)
    error = await _error(
        executor.stub.RenewBackup(executor_pb2.RenewBackupRequest(run_id=run_id), timeout=DEADLINE)
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_end_during_the_pre_chain_is_failed_precondition(executor) -> None:
    repo = unique("repo")
    await executor.hook(repo, unique("slow"), PRE, content=mark_script("sleep 3\n"))
    call = executor.stub.BeginBackup(
        executor_pb2.BeginBackupRequest(repository_id=repo, variables=executor.variables()),
        timeout=30,
    )
    first = await call.read()
    error = await _error(
        executor.stub.EndBackup(
            executor_pb2.EndBackupRequest(run_id=first.event.run_id, outcome=SUCCESS),
            timeout=DEADLINE,
        )
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    call.cancel()


async def test_over_the_concurrency_cap_is_resource_exhausted(
    library, tmp_path, short_socket_dir
) -> None:
    handle = await open_executor(
        library, tmp_path, short_socket_dir, executor_max_concurrent_runs=1
    )
    try:
        busy, other = unique("busy"), unique("other")
        await handle.hook(busy, unique("slow"), PRE, content=mark_script("sleep 2\n"))
        call = handle.stub.BeginBackup(
            executor_pb2.BeginBackupRequest(repository_id=busy, variables=handle.variables()),
            timeout=30,
        )
        await call.read()
        error = await _error(
            handle.stub.BeginBackup(
                executor_pb2.BeginBackupRequest(repository_id=other), timeout=DEADLINE
            )
        )
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert details_of(error).metadata["limit"] == "1"
        # Reads are not capped; once the chain is done the slot is free again.
        await handle.get_run((await call.read()).event.run_id)
        while await call.read() is not grpc.aio.EOF:
            pass
        summary_of(await handle.begin(other))
    finally:
        await handle.channel.close()
        await handle.app.stop(0)


async def test_a_repository_id_that_is_not_utf8_is_invalid_argument_naming_it(executor) -> None:
    """protobuf refuses such a request before the servicer runs; the client still gets
    INVALID_ARGUMENT naming the field."""
    begin = executor.channel.unary_stream(
        "/hookshelf.executor.v1.HookExecutorService/BeginBackup",
        request_serializer=lambda raw: raw,
        response_deserializer=executor_pb2.BeginBackupResponse.FromString,
    )
    bad_repository = bytes([1 << 3 | 2, 4]) + b"r\xff\xfe1"  # field 1, invalid UTF-8
    error = await _error(begin(bad_repository, timeout=10))
    found = details_of(error)
    assert found.code == grpc.StatusCode.INVALID_ARGUMENT
    assert found.field_violations == {"repository_id": "is not valid UTF-8"}
