"""Recording: every execution reaches the library once, even across a library outage."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import grpc
import pytest

from executor_service.journal import WalSync
from library_service.app import start_library
from shared.settings import Settings
from shared.stubs import executor_pb2, library_pb2, library_pb2_grpc
from tests.conftest import LibraryHandle
from tests.patience import eventually
from tests.service.executor_support import (
    POST,
    PRE,
    SUCCESS,
    open_executor,
    summary_of,
    unique,
)


@pytest.fixture
def database_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"


async def _library(settings: Settings) -> LibraryHandle:
    app = await start_library(settings)
    channel = grpc.aio.insecure_channel(app.address)
    return LibraryHandle(app, channel, library_pb2_grpc.ScriptLibraryServiceStub(channel))


async def test_records_wait_out_a_library_outage_and_arrive_once(
    library_settings: Settings, tmp_path: Path, short_socket_dir: Path
) -> None:
    library = await _library(library_settings)
    address = library.address
    executor = await open_executor(library, tmp_path, short_socket_dir)
    try:
        repo = unique("repo")
        await executor.hook(repo, unique("pre"), PRE)
        await executor.hook(repo, unique("post"), POST, custom_run_on=library_pb2.RUN_ON_ALWAYS)
        run_id = (await executor.begin(repo))[0].run_id
        await executor.delivered()

        # The library goes away mid-run: the post chain still runs (plan and content were
        # taken at BeginBackup) and its record waits in the journal.
        await library.channel.close()
        await library.app.stop(0)
        summary = summary_of(await executor.end(run_id, SUCCESS))
        assert summary.succeeded_count == 1
        assert await executor.app.journal.count_pending() == 1
        await asyncio.sleep(1.0)  # a few failed deliveries
        assert await executor.app.journal.count_pending() == 1

        # Back on the same address: the record arrives, once.
        library = await _library(library_settings.model_copy(update={"library_listen": address}))
        executor.library = library
        await executor.delivered()
        records = await executor.executions(run_id=run_id)
        assert len(records) == 2
        assert {r.hook_type for r in records} == {PRE, POST}

        # Sending everything again (as after a lost answer) stores nothing twice.
        again = await executor.app.library.record_executions(records)
        assert (again.recorded_count, again.duplicate_count) == (0, 2)
        assert len(await executor.executions(run_id=run_id)) == 2
    finally:
        await executor.channel.close()
        await executor.app.stop(0)
        await library.channel.close()
        await library.app.stop(0)


async def test_records_reach_a_library_that_is_back_without_waiting_out_the_back_off(
    library_settings: Settings, tmp_path: Path, short_socket_dir: Path
) -> None:
    library = await _library(library_settings)
    address = library.address
    executor = await open_executor(library, tmp_path, short_socket_dir)
    recorder = executor.app.recorder
    # After one failed delivery the recorder backs off for an hour: only the library's
    # return (its channel connecting again) can end that within this test.
    recorder.first_backoff = recorder.max_backoff = 3600.0
    try:
        repo = unique("repo")
        await executor.hook(repo, unique("pre"), PRE)
        await executor.hook(repo, unique("post"), POST, custom_run_on=library_pb2.RUN_ON_ALWAYS)
        run_id = (await executor.begin(repo))[0].run_id
        await executor.delivered()

        await library.channel.close()
        await library.app.stop(0)
        await executor.end(run_id, SUCCESS)
        await eventually(lambda: recorder.waiting_for_library, "the recorder backing off")
        assert await executor.app.journal.count_pending() == 1

        library = await _library(library_settings.model_copy(update={"library_listen": address}))
        executor.library = library
        await executor.delivered()
        assert len(await executor.executions(run_id=run_id)) == 2
    finally:
        await executor.channel.close()
        await executor.app.stop(0)
        await library.channel.close()
        await library.app.stop(0)


async def test_a_result_is_told_of_only_once_synced_and_the_next_step_need_not_wait(
    executor, monkeypatch
) -> None:
    """Pipelined durability: step 1's result is committed and the chain goes on to step 2
    while it is synced, but each finished event (and record) waits for a sync of the
    journal's log that covers its result. One sync may cover several results (a sync
    queued behind another finds its result covered and skips the fsync), so this counts
    the results each sync covered, not the syncs: how many there are depends on how the
    steps and the journal's thread happen to interleave."""
    repo = unique("repo")
    first = await executor.hook(repo, unique("first"), PRE, order=1)
    await executor.hook(repo, unique("second"), PRE, order=2)
    journal = executor.app.journal
    # Results are committed in step order: step i's is result `before + i + 1`.
    before = journal._results_committed
    # What happened, in order: ("held", step 2 ran meanwhile), ("synced", results the
    # fsync covered), ("finished", step index) as the client got it.
    told: list[tuple[str, int]] = []
    real_sync = WalSync.sync
    held = threading.Event()

    def sync_after_the_next_step_ran(self: WalSync) -> None:
        if not held.is_set():  # the first fsync, step 1's result unsynced: hold it for step 2
            held.set()
            # A chain waiting for this sync never runs step 2: give up after a while (a
            # generous one: on a busy machine starting step 2 may take seconds).
            deadline = time.monotonic() + 30
            while len(executor.lines()) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            told.append(("held", len(executor.lines()) == 2))
        # Every result committed before the fsync starts is on disk when it returns.
        covered = journal._results_committed - before
        real_sync(self)
        told.append(("synced", covered))

    monkeypatch.setattr(WalSync, "sync", sync_after_the_next_step_ran)
    call = executor.stub.BeginBackup(
        executor_pb2.BeginBackupRequest(repository_id=repo, variables=executor.variables()),
        timeout=90,
    )
    async for response in call:
        if response.event.HasField("step_finished"):
            told.append(("finished", response.event.step_finished.step_index))
    # Step 2 ran while step 1's result was still unsynced: the chain did not wait.
    assert ("held", True) in told, told
    # Each finished event reached the client after a sync that covered its result.
    for index in (0, 1):
        at = told.index(("finished", index))
        assert any(what == "synced" and covered >= index + 1 for what, covered in told[:at]), (
            f"step {index} told of before its result was synced: {told}"
        )
    await executor.delivered()
    (record,) = await executor.executions(script_id=first)
    assert record.status == library_pb2.EXECUTION_STATUS_SUCCEEDED


async def test_records_too_many_for_one_request_are_delivered_in_several(
    library: LibraryHandle, tmp_path: Path, short_socket_dir: Path
) -> None:
    """Each record keeps up to 256 KiB of output; a backlog of them is more than the
    library accepts in one request (4 MiB), so it goes in batches that fit, all of it."""
    executor = await open_executor(library, tmp_path, short_socket_dir)
    try:
        noisy = (
            "#!/bin/sh\n"
            "head -c 200000 /dev/zero | tr '\\0' o\n"
            "head -c 200000 /dev/zero | tr '\\0' e >&2\n"
        )
        repo = unique("repo")
        for order in range(24):
            await executor.hook(repo, unique("noisy"), PRE, order=order, content=noisy)
        await executor.app.recorder.stop()  # a backlog, as after a library outage
        run_id = (await executor.begin(repo))[0].run_id
        assert await executor.app.journal.count_pending() == 24
        executor.app.recorder.start()
        await executor.delivered(timeout=60)
        records, token = [], ""
        while True:  # small pages: 24 such records are more than one response holds
            page = await library.stub.ListExecutions(
                library_pb2.ListExecutionsRequest(run_id=run_id, page_size=5, page_token=token),
                timeout=30,
            )
            records += page.executions
            token = page.next_page_token
            if not token:
                break
        assert len({r.execution_id for r in records}) == 24
        assert all(r.stdout.truncated and r.stderr.truncated for r in records)
    finally:
        await executor.channel.close()
        await executor.app.stop(0)
