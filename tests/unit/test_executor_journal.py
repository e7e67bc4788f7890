"""The executor's journal: what survives a crash, and the guards it enforces."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from pathlib import Path

import pytest

from executor_service.chains import records
from executor_service.journal import Journal, RunRecord, StateDirInUse, StepRow
from executor_service.journal import syncing as journal_syncing
from executor_service.library import content_cache as content_cache_module
from executor_service.library.content_cache import ContentCache, ContentUnavailable, digest_of
from shared.errors import FailedPrecondition, NotFound
from shared.stubs import executor_pb2, library_pb2

PRE = library_pb2.HOOK_TYPE_PRE_BACKUP
POST = library_pb2.HOOK_TYPE_POST_BACKUP


def _run(run_id: str, repository_id: str = "repo") -> RunRecord:
    return RunRecord(
        run_id=run_id,
        repository_id=repository_id,
        lease_expires_at=100.0,
        created_at=1.0,
        variables={"A": "1"},
        post_plan=[
            library_pb2.PlanStep(
                script_name="post", digest="sha256:" + "0" * 64, parameter_values={"P": "v"}
            )
        ],
    )


def _attempt(run_id: str, execution_id: str, index: int, hook_type: int = POST) -> StepRow:
    record = records.started_record(
        execution_id=execution_id,
        script_id="s",
        script_name=f"step-{index}",
        digest="d",
        repository_id="repo",
        job_id="",
        run_id=run_id,
        hook_type=hook_type,
        trigger=library_pb2.EXECUTION_TRIGGER_BACKUP,
        backup_outcome=0,
        executor_id="x",
        started_at=10.0,
    )
    return StepRow(
        execution_id=execution_id,
        run_id=run_id,
        hook_type=hook_type,
        step_index=index,
        script_name=f"step-{index}",
        started_at=10.0,
        record=record,
    )


async def test_runs_survive_a_reopen_and_one_open_run_per_repository(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path)
    await journal.create_run(_run("r1"))
    with pytest.raises(FailedPrecondition) as caught:
        await journal.create_run(_run("r2"))
    assert caught.value.metadata["run_id"] == "r1"
    await journal.create_run(_run("r3", repository_id="other"))
    await journal.update_run("r1", state=executor_pb2.RUN_STATE_ENDED, post_chain_done=True)
    await journal.create_run(_run("r4"))  # the repository is free again
    await journal.close()

    journal = await Journal.open(tmp_path)
    try:
        run = await journal.get_run("r1")
        assert run is not None and not run.is_open and run.post_chain_done
        assert run.variables == {"A": "1"}
        assert run.post_plan[0].parameter_values["P"] == "v"
        assert [r.run_id for r in await journal.open_runs()] == ["r3", "r4"]
        assert await journal.get_run("missing") is None
    finally:
        await journal.close()


async def test_one_process_per_state_dir(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path)
    try:
        with pytest.raises(StateDirInUse):
            await Journal.open(tmp_path)
    finally:
        await journal.close()
    await (await Journal.open(tmp_path)).close()  # free again once closed
    assert (tmp_path.stat().st_mode & 0o777) == 0o700
    assert ((tmp_path / "journal.db").stat().st_mode & 0o777) == 0o600


async def test_a_step_result_and_its_record_are_written_together(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path)
    try:
        await journal.create_run(_run("r1"))
        await journal.step_started(_attempt("r1", "e1", 0))
        await journal.step_started(_attempt("r1", "e2", 1))
        assert [s.execution_id for s in await journal.unfinished_steps()] == ["e1", "e2"]
        assert await journal.count_pending() == 0

        done = records.finished_record(
            _attempt("r1", "e1", 0).record,
            status=library_pb2.EXECUTION_STATUS_SUCCEEDED,
            exit_code=0,
            ended_at=11.0,
            duration_ms=1000,
        )
        await journal.step_finished(done, ended_at=11.0, done=True, outputs={"K": "V"})
        cut = records.interrupted_record(_attempt("r1", "e2", 1).record, now=12.0)
        await journal.step_finished(cut, ended_at=12.0, done=False)

        # Finished and cut-short attempts both go to the library; only e1 counts as done.
        assert {r.execution_id for r in await journal.pending_records(10)} == {"e1", "e2"}
        finished = await journal.done_steps("r1", POST)
        assert list(finished) == [0] and finished[0].outputs == {"K": "V"}
        assert await journal.unfinished_steps() == []
        assert "interrupted" in cut.error_message and cut.duration_ms == 2000

        await journal.mark_delivered(["e1"])
        await journal.mark_rejected("e2", "bad")
        assert await journal.count_pending() == 0
    finally:
        await journal.close()


async def test_a_result_and_the_next_attempt_commit_together(tmp_path: Path) -> None:
    """One transaction per step of a chain (chains.py): what a restart finds after it is
    the finished step done, the next one cut short, and the record queued."""
    journal = await Journal.open(tmp_path)
    try:
        await journal.create_run(_run("r1"))
        await journal.step_started(_attempt("r1", "e1", 0))
        done = records.finished_record(
            _attempt("r1", "e1", 0).record,
            status=library_pb2.EXECUTION_STATUS_SUCCEEDED,
            exit_code=0,
            ended_at=11.0,
            duration_ms=1000,
        )
        synced = await journal.commit_step_result(
            done, ended_at=11.0, done=True, then_started=_attempt("r1", "e2", 1)
        )
        await synced
    finally:
        await journal.close()
    journal = await Journal.open(tmp_path)  # what a restarted executor finds
    try:
        assert list(await journal.done_steps("r1", POST)) == [0]
        assert [s.execution_id for s in await journal.unfinished_steps()] == ["e2"]
        assert [r.execution_id for r in await journal.pending_records(10)] == ["e1"]
    finally:
        await journal.close()


async def test_leases_expire_only_for_runs_awaiting_their_end(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path)
    try:
        await journal.create_run(_run("r1"))
        assert await journal.expired_runs(now=1000) == []  # still in its pre chain
        await journal.update_run("r1", state=executor_pb2.RUN_STATE_AWAITING_END)
        assert await journal.expired_runs(now=99) == []
        assert await journal.expired_runs(now=100) == ["r1"]
        assert await journal.extend_lease("r1", 500)
        assert await journal.expired_runs(now=100) == []
        await journal.update_run("r1", state=executor_pb2.RUN_STATE_POST_RUNNING)
        assert not await journal.extend_lease("r1", 900)
    finally:
        await journal.close()


async def test_content_cache_verifies_on_fill_and_on_read(tmp_path: Path) -> None:
    good = b"#!/bin/sh\necho hi\n"
    served = {digest_of(good): good, "sha256:" + "1" * 64: b"not what the digest says"}
    fetched: list[str] = []

    async def fetch(digest: str) -> bytes:
        fetched.append(digest)
        if digest not in served:
            raise NotFound("no such content")
        return served[digest]

    cache = ContentCache(tmp_path, fetch)
    digest = digest_of(good)
    assert await cache.get(digest) == good
    assert await cache.get(digest) == good
    assert fetched == [digest]  # the second read came from disk, verified
    path = tmp_path / "cache" / "sha256" / hashlib.sha256(good).hexdigest()
    path.write_bytes(b"tampered")
    assert await cache.get(digest) == good and fetched == [digest, digest]

    with pytest.raises(ContentUnavailable, match="does not match"):
        await cache.get("sha256:" + "1" * 64)
    with pytest.raises(ContentUnavailable, match="no content"):
        await cache.get("sha256:" + "2" * 64)
    with pytest.raises(ContentUnavailable, match="not a sha256 digest"):
        await cache.get("../../etc/passwd")
    assert cache.put(b"inline") == digest_of(b"inline")


async def test_a_committed_result_is_told_of_only_once_synced(tmp_path: Path) -> None:
    """commit_step_result: committed at once (a reopened journal — the executor killed —
    has it), but until its sync is done the recorder does not see its record and
    steps_of (GetBackupRun) waits for it."""
    journal = await Journal.open(tmp_path)
    try:
        await journal.create_run(_run("r1"))
        await journal.step_started(_attempt("r1", "e1", 0))
        disk = threading.Event()
        syncs: list[str] = []
        real_sync = journal._wal.sync

        def slow_sync() -> None:  # the disk, held until the test lets it go
            disk.wait()
            real_sync()
            syncs.append("synced")

        journal._wal.sync = slow_sync  # type: ignore[method-assign]
        done = records.finished_record(
            _attempt("r1", "e1", 0).record,
            status=library_pb2.EXECUTION_STATUS_SUCCEEDED,
            exit_code=0,
            ended_at=11.0,
            duration_ms=1000,
        )
        synced = await journal.commit_step_result(done, ended_at=11.0, done=True)

        assert not synced.done()
        assert await journal.pending_records(10) == []  # not sent before it is on disk
        assert await journal.count_pending() == 1  # but committed: drained() waits for it
        assert list(await journal.done_steps("r1", POST)) == [0]  # the chain goes on
        told = asyncio.ensure_future(journal.steps_of("r1"))
        await asyncio.sleep(0.05)
        assert not told.done()  # a client is not told before the sync

        disk.set()
        await synced
        assert syncs == ["synced"]
        (step,) = await told
        assert step.status == library_pb2.EXECUTION_STATUS_SUCCEEDED
        assert [r.execution_id for r in await journal.pending_records(10)] == ["e1"]
    finally:
        await journal.close()

    journal = await Journal.open(tmp_path)
    try:
        assert list(await journal.done_steps("r1", POST)) == [0]
    finally:
        await journal.close()


async def test_results_committed_during_a_slow_sync_share_the_next_one(
    tmp_path: Path,
) -> None:
    """A sync covers the results committed before it began, never one committed while it
    ran: five results committed during one slow fsync need exactly one more, not five."""
    journal = await Journal.open(tmp_path)
    try:
        await journal.create_run(_run("r1"))
        disk = threading.Event()
        began: list[int] = []
        real_sync = journal._wal.sync

        def slow_sync() -> None:
            began.append(len(began))
            disk.wait()
            real_sync()

        journal._wal.sync = slow_sync  # type: ignore[method-assign]
        futures = []
        for index in range(6):
            await journal.step_started(_attempt("r1", f"e{index}", index))
            done = records.finished_record(
                _attempt("r1", f"e{index}", index).record,
                status=library_pb2.EXECUTION_STATUS_SUCCEEDED,
                exit_code=0,
                ended_at=11.0,
                duration_ms=1,
            )
            futures.append(await journal.commit_step_result(done, ended_at=11.0, done=True))
            while not began:  # the first sync is under way (and held) before the rest
                await asyncio.sleep(0.001)
        assert not any(future.done() for future in futures)
        disk.set()
        await asyncio.gather(*futures)
        assert began == [0, 1]
        assert len(await journal.pending_records(10)) == 6
    finally:
        await journal.close()


async def test_step_results_checkpoint_the_log_now_and_then(tmp_path: Path) -> None:
    """Results never checkpoint inline (that would fsync in the event loop); their
    background sync does, so a long chain does not grow the log without bound."""
    journal = await Journal.open(tmp_path)
    try:
        await journal.create_run(_run("r1"))
        every = journal_syncing.CHECKPOINT_EVERY_RESULTS
        sizes = []
        for i in range(every * 6):
            attempt = _attempt("r1", f"e{i}", i)
            await journal.step_started(attempt)
            record = records.finished_record(
                attempt.record,
                status=library_pb2.EXECUTION_STATUS_SUCCEEDED,
                exit_code=0,
                ended_at=11.0,
                duration_ms=1,
            )
            await journal.step_finished(record, ended_at=11.0, done=True)
            if i % every == every - 1:
                sizes.append((tmp_path / "journal.db-wal").stat().st_size)
        # Once checkpointed, the log is written again from its start: it stops growing
        # (after a round or two, as the tables' trees grow a level).
        assert sizes[3] == sizes[4] == sizes[5] < 2 * sizes[0], sizes
    finally:
        await journal.close()


async def test_only_content_owed_later_is_synced(tmp_path: Path, monkeypatch) -> None:
    """A pre plan's content is written without an fsync (a torn file fails verification
    and is fetched again); a post plan's content and inline content are fsynced."""
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    contents = {digest_of(c): c for c in (b"#!/bin/sh\necho pre\n", b"#!/bin/sh\necho post\n")}
    pre, post = list(contents)

    async def fetch(digest: str) -> bytes:
        return contents[digest]

    cache = ContentCache(tmp_path, fetch)
    await cache.ensure(pre)
    assert synced == []
    await cache.ensure(post, durable=True)
    assert len(synced) == 1
    await cache.ensure(pre, durable=True)  # cached unsynced before: synced now
    assert len(synced) == 2
    cache.put(b"inline post script")
    assert len(synced) == 3


async def test_a_torn_cache_file_is_fetched_again(tmp_path: Path) -> None:
    """What a power cut can leave of a file written without an fsync: never run."""
    good = b"#!/bin/sh\necho hello\n"
    digest = digest_of(good)
    fetched: list[str] = []

    async def fetch(wanted: str) -> bytes:
        fetched.append(wanted)
        return good

    cache = ContentCache(tmp_path, fetch)
    assert await cache.get(digest) == good
    path = tmp_path / "cache" / "sha256" / hashlib.sha256(good).hexdigest()
    for torn in (good[:7], b"", b"\0" * len(good)):
        path.write_bytes(torn)
        assert await cache.get(digest) == good
    assert len(fetched) == 4
    assert path.read_bytes() == good


async def test_content_sent_with_a_plan_is_cached_only_if_it_matches(tmp_path: Path) -> None:
    async def no_fetch(digest: str) -> bytes:
        raise AssertionError("fetched")

    cache = ContentCache(tmp_path, no_fetch)
    good = b"#!/bin/sh\necho sent\n"
    assert not await cache.fill(digest_of(good), b"something else")
    assert not (tmp_path / "cache" / "sha256" / hashlib.sha256(good).hexdigest()).exists()
    assert await cache.fill(digest_of(good), good)
    assert await cache.get(digest_of(good)) == good  # held in memory, no fetch


async def test_held_content_is_bounded_least_recently_used_first(
    tmp_path: Path, monkeypatch
) -> None:
    """Carried content stays in memory after its step (another run may carry the same
    script), up to HELD_BYTES: beyond it the least recently used is fetched again."""
    contents = [f"#!/bin/sh\necho {i}\n".encode() for i in range(3)]
    monkeypatch.setattr(content_cache_module, "HELD_BYTES", 2 * len(contents[0]))
    fetched: list[str] = []

    async def fetch(digest: str) -> bytes:
        fetched.append(digest)
        return next(c for c in contents if digest_of(c) == digest)

    cache = ContentCache(tmp_path, fetch)
    first, second, third = (digest_of(c) for c in contents)
    assert await cache.fill(first, contents[0]) and await cache.fill(second, contents[1])
    assert await cache.get(first) == contents[0]  # used: now the most recent
    assert await cache.fill(third, contents[2])  # over the bound: `second` goes
    assert [await cache.get(d) for d in (first, third)] == [contents[0], contents[2]]
    assert fetched == []
    assert await cache.get(second) == contents[1] and fetched == [second]
