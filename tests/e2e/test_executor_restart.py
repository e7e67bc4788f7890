"""The promise across an executor that is SIGKILLed and started again (a real process),
on SQLite and PostgreSQL libraries.

- killed in the pre chain → on restart the post chain runs for ABORTED: FAILURE and
  ALWAYS hooks exactly once, the SUCCESS hook never;
- killed in the post chain → on restart the post chain resumes: finished steps are not
  run again, the interrupted one is, the rest run once;
- killed while the run waits for EndBackup → the run is still open after the restart and
  EndBackup runs its post chain once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.stubs import executor_pb2, library_pb2
from tests.e2e.test_executor_process import ExecutorProcess
from tests.patience import PATIENCE
from tests.service.assignments_support import DEADLINE, POST, PRE, make_script
from tests.service.executor_support import (
    mark_script,
    summary_of,
    unique,
)


@pytest.fixture
async def process(
    library, tmp_path: Path, short_socket_dir: Path
) -> AsyncIterator[ExecutorProcess]:
    executor = ExecutorProcess(
        library_address=library.address, state_dir=tmp_path / "state", socket_dir=short_socket_dir
    )
    await executor.start()
    try:
        yield executor
    finally:
        await executor.stop_if_running()


async def _hook(
    library, repo: str, name: str, hook_type: int, content: str, order: int = 0, **assignment
) -> None:
    script = await make_script(library, name, content=content)
    await library.stub.AssignScript(
        library_pb2.AssignScriptRequest(
            assignment=library_pb2.Assignment(
                repository_id=repo,
                script_id=script.id,
                hook_type=hook_type,
                execution_order=order,
                enabled=True,
                **assignment,
            )
        ),
        timeout=DEADLINE,
    )


async def _post_hooks(library, repo: str) -> None:
    for order, run_on in enumerate(("SUCCESS", "FAILURE", "ALWAYS")):
        await _hook(
            library,
            repo,
            f"post-{run_on.lower()}-{repo}",
            POST,
            mark_script(),
            order,
            custom_run_on=getattr(library_pb2, f"RUN_ON_{run_on}"),
        )


def _lines(marks: Path) -> list[str]:
    return marks.read_text().splitlines() if marks.exists() else []


def _post_runs(marks: Path) -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    for line in _lines(marks):
        name, status = line.split()[:2]
        if name.startswith("post-"):
            found[(name.split("-")[1], status)] += 1
    return found


async def _wait_for(path: Path, timeout: float = PATIENCE) -> str:
    async with asyncio.timeout(timeout):
        while not path.exists() or not path.read_text().strip():
            await asyncio.sleep(0.02)
    return path.read_text().strip()


async def _wait_ended(executor: ExecutorProcess, run_id: str, timeout: float = PATIENCE):
    async with asyncio.timeout(timeout):
        while True:
            run = (
                await executor.stub.GetBackupRun(
                    executor_pb2.GetBackupRunRequest(run_id=run_id), timeout=DEADLINE
                )
            ).run
            if run.state == executor_pb2.RUN_STATE_ENDED:
                return run
            await asyncio.sleep(0.1)


def _running(pid_file: Path) -> bool:
    """Is the hook that wrote its pid there still running (not a zombie)?"""
    try:
        with open(f"/proc/{int(pid_file.read_text())}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return False


async def test_killed_in_the_pre_chain(library, process, tmp_path) -> None:
    repo, marks, pid_file = unique("repo"), tmp_path / "marks", tmp_path / "pre.pid"
    await _hook(library, repo, "pre-slow", PRE, mark_script(f"echo $$ > {pid_file}\nsleep 30\n"))
    await _post_hooks(library, repo)

    call = process.stub.BeginBackup(
        executor_pb2.BeginBackupRequest(repository_id=repo, variables={"MARKS": str(marks)}),
        timeout=60,
    )
    run_id = (await call.read()).event.run_id
    await _wait_for(pid_file)
    await process.kill()
    assert _running(pid_file), "the orphaned hook lives on after the SIGKILL"
    assert _post_runs(marks) == {}

    await process.start()
    assert not _running(pid_file), "the successor ended its predecessor's hook"
    run = await _wait_ended(process, run_id)
    assert run.outcome == library_pb2.BACKUP_OUTCOME_ABORTED
    assert run.verdict == executor_pb2.VERDICT_ABORT
    assert _post_runs(marks) == {("failure", "aborted"): 1, ("always", "aborted"): 1}
    pre = [s for s in run.steps if s.hook_type == PRE]
    assert [s.status for s in pre] == [library_pb2.EXECUTION_STATUS_FAILED]

    # Another restart owes nothing more.
    await process.kill()
    await process.start()
    await asyncio.sleep(0.5)
    assert sum(_post_runs(marks).values()) == 2

    # Every execution reached the library, the lost pre attempt included, once.
    async with asyncio.timeout(PATIENCE):
        while True:
            records = (
                await library.stub.ListExecutions(
                    library_pb2.ListExecutionsRequest(run_id=run_id, page_size=100),
                    timeout=DEADLINE,
                )
            ).executions
            if len(records) == 3:
                break
            await asyncio.sleep(0.2)
    interrupted = [r for r in records if r.hook_type == PRE]
    assert "interrupted" in interrupted[0].error_message


async def test_killed_in_the_post_chain_resumes_it(library, process, tmp_path) -> None:
    repo, marks = unique("repo"), tmp_path / "marks"
    pid_file, flag = tmp_path / "post.pid", tmp_path / "second-attempt"
    # The second post step hangs on its first attempt only.
    hang_once = mark_script(
        before=f"if [ ! -e {flag} ]; then touch {flag}; echo $$ > {pid_file}; sleep 30; fi\n"
    )
    always = {"custom_run_on": library_pb2.RUN_ON_ALWAYS}
    await _hook(library, repo, "post-1", POST, mark_script(), 1, **always)
    await _hook(library, repo, "post-2", POST, hang_once, 2, **always)
    await _hook(library, repo, "post-3", POST, mark_script(), 3, **always)

    begin = process.stub.BeginBackup(
        executor_pb2.BeginBackupRequest(repository_id=repo, variables={"MARKS": str(marks)}),
        timeout=60,
    )
    events = [r.event async for r in begin]
    assert summary_of(events).verdict == executor_pb2.VERDICT_PROCEED
    run_id = events[0].run_id
    end = process.stub.EndBackup(
        executor_pb2.EndBackupRequest(run_id=run_id, outcome=library_pb2.BACKUP_OUTCOME_WARNING),
        timeout=60,
    )
    await end.read()
    await _wait_for(pid_file)
    await process.kill()
    assert [line.split()[0] for line in _lines(marks)] == ["post-1"]

    await process.start()
    assert not _running(pid_file)
    run = await _wait_ended(process, run_id)
    assert run.outcome == library_pb2.BACKUP_OUTCOME_WARNING
    assert [line.split()[0] for line in _lines(marks)] == ["post-1", "post-2", "post-3"]
    assert {line.split()[1] for line in _lines(marks)} == {"warning"}
    statuses = [(s.step_index, s.status) for s in run.steps]
    ok, failed = library_pb2.EXECUTION_STATUS_SUCCEEDED, library_pb2.EXECUTION_STATUS_FAILED
    assert statuses == [(0, ok), (1, failed), (1, ok), (2, ok)]


async def test_killed_while_awaiting_end_keeps_the_run(library, process, tmp_path) -> None:
    repo, marks = unique("repo"), tmp_path / "marks"
    await _hook(library, repo, "pre", PRE, mark_script())
    await _post_hooks(library, repo)
    begin = process.stub.BeginBackup(
        executor_pb2.BeginBackupRequest(repository_id=repo, variables={"MARKS": str(marks)}),
        timeout=60,
    )
    events = [r.event async for r in begin]
    assert summary_of(events).verdict == executor_pb2.VERDICT_PROCEED
    await process.kill()
    await process.start()

    end = process.stub.EndBackup(
        executor_pb2.EndBackupRequest(
            run_id=events[0].run_id, outcome=library_pb2.BACKUP_OUTCOME_SUCCESS
        ),
        timeout=60,
    )
    summary = summary_of([r.event async for r in end])
    assert summary.post_chain_ran and summary.outcome == library_pb2.BACKUP_OUTCOME_SUCCESS
    assert _post_runs(marks) == {("success", "success"): 1, ("always", "success"): 1}
