"""Backup runs through the real executor and library: the normal path, events, records."""

from __future__ import annotations

import pytest

from shared.stubs import executor_pb2, library_pb2
from tests.service.executor_support import (
    POST,
    PRE,
    SUCCESS,
    kinds_of,
    mark_script,
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
    await executor.hook(
        repo, unique("on-success"), POST, order=1, custom_run_on=library_pb2.RUN_ON_SUCCESS
    )
    await executor.hook(
        repo, unique("on-failure"), POST, order=2, custom_run_on=library_pb2.RUN_ON_FAILURE
    )
    await executor.hook(
        repo, unique("always"), POST, order=3, custom_run_on=library_pb2.RUN_ON_ALWAYS
    )

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
        "stop-app",
        "on-success",
        "always",
    ]
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


async def test_output_variables_reach_later_steps_the_post_chain_and_the_summary(
    executor,
) -> None:
    repo = unique("repo")
    writer = mark_script('echo "SNAPSHOT=snap-42" >> "$HOOKSHELF_OUTPUT"\n')
    reader = mark_script(
        'echo "saw $SNAPSHOT $GIVEN" >> "$MARKS"\necho "LATE=yes" >> "$HOOKSHELF_OUTPUT"\n'
    )
    await executor.hook(repo, unique("writer"), PRE, order=1, content=writer)
    await executor.hook(repo, unique("reader"), PRE, order=2, content=reader)
    await executor.hook(repo, unique("post-reader"), POST, content=reader)

    begin = await executor.begin(repo, variables=executor.variables(GIVEN="by-client"))
    pre = summary_of(begin)
    assert dict(pre.variables) == {"SNAPSHOT": "snap-42", "LATE": "yes"}
    end = await executor.end(begin[0].run_id, SUCCESS, variables={"GIVEN": "at-end"})
    assert dict(summary_of(end).variables) == {"LATE": "yes"}
    saw = [line for line in executor.lines() if line.startswith("saw")]
    assert saw == ["saw snap-42 by-client", "saw snap-42 at-end"]


async def test_on_error_continue_runs_the_rest_and_proceeds(executor) -> None:
    repo = unique("repo")
    await executor.hook(
        repo,
        unique("flaky"),
        PRE,
        order=1,
        content=mark_script("exit 3\n"),
        on_error=library_pb2.ON_ERROR_CONTINUE,
    )
    await executor.hook(repo, unique("next"), PRE, order=2)
    begin = await executor.begin(repo)
    pre = summary_of(begin)
    assert pre.verdict == executor_pb2.VERDICT_PROCEED
    assert (pre.succeeded_count, pre.failed_count) == (1, 1)
    finished = [e.step_finished for e in begin if e.HasField("step_finished")]
    assert [(f.status, f.exit_code) for f in finished] == [
        (library_pb2.EXECUTION_STATUS_FAILED, 3),
        (library_pb2.EXECUTION_STATUS_SUCCEEDED, 0),
    ]
    assert all(f.digest.startswith("sha256:") and f.execution_id for f in finished)
    await executor.end(begin[0].run_id, SUCCESS)


async def test_on_error_skip_backup_stops_with_skip(executor) -> None:
    repo = unique("repo")
    await executor.hook(
        repo,
        unique("check-disk"),
        PRE,
        order=1,
        content=mark_script("exit 1\n"),
        on_error=library_pb2.ON_ERROR_SKIP_BACKUP,
    )
    await executor.hook(repo, unique("never"), PRE, order=2)
    begin = await executor.begin(repo)
    pre = summary_of(begin)
    assert pre.verdict == executor_pb2.VERDICT_SKIP
    assert pre.outcome == library_pb2.BACKUP_OUTCOME_SKIPPED and pre.post_chain_ran
    skipped = [e.step_skipped for e in begin if e.HasField("step_skipped")]
    assert [s.reason for s in skipped] == [executor_pb2.SKIP_REASON_CHAIN_STOPPED]
    assert "SKIP_BACKUP" in skipped[0].detail
