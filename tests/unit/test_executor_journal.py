"""The executor's journal: what survives a crash, and the guards it enforces."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from executor_service import records
from executor_service.content_cache import ContentCache, ContentUnavailable, digest_of
from executor_service.journal import Journal, RunRecord, StateDirInUse, StepRow
from shared.errors import FailedPrecondition, NotFound
from shared.stubs import executor_pb2, library_pb2

PRE = library_pb2.HOOK_TYPE_PRE_BACKUP
POST = library_pb2.HOOK_TYPE_POST_BACKUP


def _run(run_id: str, repository_id: str = "repo") -> RunRecord:
    return RunRecord(
        run_id=run_id, repository_id=repository_id, lease_expires_at=100.0, created_at=1.0,
        variables={"A": "1"},
        post_plan=[library_pb2.PlanStep(script_name="post", digest="sha256:" + "0" * 64,
                                        parameter_values={"P": "v"})],
    )


def _attempt(run_id: str, execution_id: str, index: int, hook_type: int = POST) -> StepRow:
    record = records.started_record(
        execution_id=execution_id, script_id="s", script_name=f"step-{index}", digest="d",
        repository_id="repo", job_id="", run_id=run_id, hook_type=hook_type,
        trigger=library_pb2.EXECUTION_TRIGGER_BACKUP, backup_outcome=0, executor_id="x",
        started_at=10.0,
    )
    return StepRow(execution_id=execution_id, run_id=run_id, hook_type=hook_type,
                   step_index=index, script_name=f"step-{index}", started_at=10.0,
                   record=record)


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

        done = records.finished_record(_attempt("r1", "e1", 0).record,
                                       status=library_pb2.EXECUTION_STATUS_SUCCEEDED,
                                       exit_code=0, ended_at=11.0, duration_ms=1000)
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
