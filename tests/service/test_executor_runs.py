"""Backup runs through the real executor and library: the normal path, events, records."""

from __future__ import annotations

import pytest

from shared.stubs import executor_pb2, library_pb2
from tests.service.test_executor_support import (  # noqa: F401 - fixtures
    POST,
    PRE,
    SUCCESS,
    executor,
    kinds_of,
    mark_script,
    short_socket_dir,
    summary_of,
    unique,
)

RUN_ON = library_pb2


@pytest.fixture
def database_url(tmp_path) -> str:
    """These tests are about the executor: one library backend is enough here (the fault
    matrix runs on both)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"


async def test_normal_run_streams_pre_then_post_and_records_every_step(executor) -> None:
    repo = unique("repo")
    await executor.hook(repo, unique("stop-app"), PRE)
    await executor.hook(repo, unique("on-success"), POST, order=1,
                        custom_run_on=library_pb2.RUN_ON_SUCCESS)
    await executor.hook(repo, unique("on-failure"), POST, order=2,
                        custom_run_on=library_pb2.RUN_ON_FAILURE)
    await executor.hook(repo, unique("always"), POST, order=3,
                        custom_run_on=library_pb2.RUN_ON_ALWAYS)

    begin = await executor.begin(repo, job_id="job-1", repository_path="/backups/r")
    pre = summary_of(begin)
    assert pre.verdict == executor_pb2.VERDICT_PROCEED
    assert pre.run_state == executor_pb2.RUN_STATE_AWAITING_END
    assert not pre.post_chain_ran
    assert kinds_of(begin) == ["plan", "step_started", "step_finished", "summary"]
    run_id = begin[0].run_id
    assert [line.split()[1] for line in executor.lines()] == ["pre"]

    end = await executor.end(run_id, SUCCESS)
    post = summary_of(end)
    assert post.outcome == SUCCESS and post.post_chain_ran
    assert post.run_state == executor_pb2.RUN_STATE_ENDED
    assert (post.succeeded_count, post.failed_count, post.skipped_count) == (2, 0, 1)
    skipped = [e.step_skipped for e in end if e.HasField("step_skipped")]
    assert [s.reason for s in skipped] == [executor_pb2.SKIP_REASON_RUN_ON_MISMATCH]
    assert skipped[0].script_name.startswith("on-failure")
    lines = executor.lines()
    assert [line.split()[0].rsplit("-", 1)[0] for line in lines] == [
        "stop-app", "on-success", "always"]
    assert lines[1].endswith(" success")

    run = await executor.get_run(run_id)
    assert run.state == executor_pb2.RUN_STATE_ENDED
    assert run.verdict == executor_pb2.VERDICT_PROCEED and run.outcome == SUCCESS
    assert len(run.steps) == 3 and run.post_summary.post_chain_ran

    await executor.delivered()
    records = await executor.executions(run_id=run_id)
    assert len(records) == 3
    assert {r.trigger for r in records} == {library_pb2.EXECUTION_TRIGGER_BACKUP}
    assert {r.job_id for r in records} == {"job-1"}
    assert all(r.status == library_pb2.EXECUTION_STATUS_SUCCEEDED for r in records)
    assert {r.executor_id for r in records} == {records[0].executor_id} != {""}
