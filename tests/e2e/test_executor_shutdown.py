"""SIGTERM: new work stops, running steps get the grace, then are killed and recorded;
open runs stay in the journal and are honoured by the next process."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
import pytest

from shared.stubs import executor_pb2, library_pb2
from tests.e2e.test_executor_process import ExecutorProcess
from tests.e2e.test_executor_restart import _hook, _post_hooks, _post_runs, _wait_ended, _wait_for
from tests.patience import PATIENCE, eventually
from tests.service.executor_support import (  # noqa: F401 - fixtures
    POST,
    PRE,
    mark_script,
    summary_of,
    unique,
)

ok = library_pb2.EXECUTION_STATUS_SUCCEEDED


@pytest.fixture
def database_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"


async def test_sigterm_drains_within_the_grace_then_kills(
    library, tmp_path: Path, short_socket_dir: Path
) -> None:
    marks, short_pid, long_pid = tmp_path / "marks", tmp_path / "short.pid", tmp_path / "long.pid"
    release = tmp_path / "release"
    quick, slow = unique("quick"), unique("slow")
    # quick-1 ends once the test lets it, right after the SIGTERM: within the grace on a
    # machine of any speed (a fixed `sleep 1` against a 2.5 s grace is not, on a busy one).
    await _hook(
        library,
        quick,
        "quick-1",
        PRE,
        mark_script(
            before=f"echo $$ > {short_pid}; while [ ! -e {release} ]; do sleep 0.05; done\n"
        ),
        1,
    )
    await _hook(library, quick, "quick-2", PRE, mark_script(), 2)
    await _hook(library, slow, "slow-1", PRE, mark_script(f"echo $$ > {long_pid}; sleep 30\n"))
    await _post_hooks(library, slow)

    executor = ExecutorProcess(
        library_address=library.address,
        state_dir=tmp_path / "state",
        socket_dir=short_socket_dir,
        grace=2.5,
    )
    await executor.start()
    try:
        calls = {
            repo: executor.stub.BeginBackup(
                executor_pb2.BeginBackupRequest(
                    repository_id=repo, variables={"MARKS": str(marks)}
                ),
                timeout=60,
            )
            for repo in (quick, slow)
        }
        await _wait_for(short_pid)
        await _wait_for(long_pid)
        assert executor.process is not None
        executor.process.terminate()
        # Once it drains (it logs that first), quick-1 may end: quick-2 must not start.
        await eventually(
            lambda: "executor.draining" in executor.log_path.read_text(), "the executor draining"
        )
        release.touch()
        streams = {repo: [r.event async for r in call] for repo, call in calls.items()}
        assert await asyncio.wait_for(executor.process.wait(), PATIENCE) == 0

        # The short step finished within the grace; the next one did not start.
        quick_events = streams[quick]
        summary = summary_of(quick_events)
        finished = [e.step_finished.status for e in quick_events if e.HasField("step_finished")]
        skipped = [e.step_skipped.reason for e in quick_events if e.HasField("step_skipped")]
        assert finished == [ok]
        assert skipped == [executor_pb2.SKIP_REASON_SHUTTING_DOWN]
        assert summary.verdict == executor_pb2.VERDICT_ABORT
        assert summary.run_state == executor_pb2.RUN_STATE_PRE_RUNNING

        # The long one was killed at the end of the grace, and recorded as cancelled.
        slow_events = streams[slow]
        (killed,) = [e.step_finished for e in slow_events if e.HasField("step_finished")]
        assert killed.status == library_pb2.EXECUTION_STATUS_CANCELLED
        assert not os.path.exists(f"/proc/{int(long_pid.read_text())}/cmdline")
        assert _post_runs(marks) == {}

        # New calls are refused while down; the next process honours both open runs.
        with pytest.raises(grpc.aio.AioRpcError):
            await executor.stub.GetBackupRun(
                executor_pb2.GetBackupRunRequest(run_id="x"), timeout=2
            )
        await executor.close_channel()
        await executor.start()
        for events in streams.values():
            run = await _wait_ended(executor, events[0].run_id)
            assert run.outcome == library_pb2.BACKUP_OUTCOME_ABORTED
        assert _post_runs(marks) == {("failure", "aborted"): 1, ("always", "aborted"): 1}
        assert [line.split()[0] for line in marks.read_text().splitlines()].count("quick-2") == 0
    finally:
        await executor.stop_if_running()
