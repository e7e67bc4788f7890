"""The fault matrix of the promise, in process, on SQLite and PostgreSQL libraries.

For each way a run can end — normal, ABORT, SKIP, the client cancelling, the lease
running out, EndBackup racing the lease watcher — the FAILURE/ALWAYS post hooks ran
exactly once and the SUCCESS-only one did not, proven by the lines the hooks wrote.
(The executor being SIGKILLed is in tests/e2e/test_executor_restart.py.)
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter

from shared.stubs import executor_pb2, library_pb2
from tests.patience import PATIENCE
from tests.service.executor_support import (
    POST,
    PRE,
    SUCCESS,
    ExecutorHandle,
    mark_script,
    summary_of,
    unique,
    workspaces_left,
)


async def _post_hooks(executor: ExecutorHandle, repo: str) -> None:
    for order, run_on in enumerate(("SUCCESS", "FAILURE", "ALWAYS")):
        await executor.hook(
            repo,
            f"post-{run_on.lower()}-{repo}",
            POST,
            order=order,
            custom_run_on=getattr(library_pb2, f"RUN_ON_{run_on}"),
        )


def _post_runs(executor: ExecutorHandle) -> Counter[tuple[str, str]]:
    """(run_on of the hook, backup status it saw) → how many times it ran."""
    found: Counter[tuple[str, str]] = Counter()
    for line in executor.lines():
        name, status = line.split()
        if name.startswith("post-"):
            found[(name.split("-")[1], status)] += 1
    return found


async def test_abort_runs_the_post_chain_once_for_aborted(executor) -> None:
    repo = unique("repo")
    await executor.hook(repo, unique("pre-fails"), PRE, order=1, content=mark_script("exit 2\n"))
    await executor.hook(repo, unique("pre-never"), PRE, order=2)
    await _post_hooks(executor, repo)

    begin = await executor.begin(repo)
    summary = summary_of(begin)
    assert summary.verdict == executor_pb2.VERDICT_ABORT
    assert summary.outcome == library_pb2.BACKUP_OUTCOME_ABORTED
    assert summary.post_chain_ran and summary.run_state == executor_pb2.RUN_STATE_ENDED
    assert _post_runs(executor) == {("failure", "aborted"): 1, ("always", "aborted"): 1}
    assert not any(line.startswith("pre-never") for line in executor.lines())
    # "pre-never" was made ready while "pre-fails" ran; its workspace went back, clean.
    assert not any(workspaces_left(executor.settings.executor_state_dir))

    # A later EndBackup replays the recorded summary and runs nothing.
    again = summary_of(await executor.end(begin[0].run_id, SUCCESS))
    assert again.outcome == library_pb2.BACKUP_OUTCOME_ABORTED and again.post_chain_ran
    assert sum(_post_runs(executor).values()) == 2


async def test_skip_runs_only_always_hooks(executor) -> None:
    repo = unique("repo")
    await executor.hook(repo, unique("pre-skip"), PRE, content=mark_script("exit 75\n"))
    await _post_hooks(executor, repo)
    summary = summary_of(await executor.begin(repo))
    assert summary.verdict == executor_pb2.VERDICT_SKIP
    assert summary.outcome == library_pb2.BACKUP_OUTCOME_SKIPPED
    assert _post_runs(executor) == {("always", "skipped"): 1}


async def test_normal_end_for_failure(executor) -> None:
    repo = unique("repo")
    await executor.hook(repo, unique("pre"), PRE)
    await _post_hooks(executor, repo)
    run_id = (await executor.begin(repo))[0].run_id
    summary = summary_of(await executor.end(run_id, library_pb2.BACKUP_OUTCOME_FAILURE))
    assert summary.outcome == library_pb2.BACKUP_OUTCOME_FAILURE
    assert _post_runs(executor) == {("failure", "failure"): 1, ("always", "failure"): 1}


async def test_client_cancel_kills_the_pre_hook_and_runs_the_post_chain(executor, tmp_path) -> None:
    repo = unique("repo")
    pid_file = tmp_path / "pre.pid"
    slow = mark_script(f"echo $$ > {pid_file}\nsleep 1000\n")
    await executor.hook(repo, unique("pre-slow"), PRE, order=1, content=slow)
    await executor.hook(repo, unique("pre-never"), PRE, order=2)
    await _post_hooks(executor, repo)

    call = executor.stub.BeginBackup(
        executor_pb2.BeginBackupRequest(repository_id=repo, variables=executor.variables()),
        timeout=30,
    )
    run_id = ""
    async for response in call:
        run_id = response.event.run_id
        if response.event.HasField("step_started"):
            break
    async with asyncio.timeout(PATIENCE):
        while not pid_file.exists() or not pid_file.read_text().strip():
            await asyncio.sleep(0.02)
    call.cancel()

    run = await executor.wait_ended(run_id)
    assert run.verdict == executor_pb2.VERDICT_ABORT
    assert run.outcome == library_pb2.BACKUP_OUTCOME_CANCELLED
    pre_steps = [s for s in run.steps if s.hook_type == PRE]
    assert [s.status for s in pre_steps] == [library_pb2.EXECUTION_STATUS_CANCELLED]
    assert _post_runs(executor) == {("failure", "cancelled"): 1, ("always", "cancelled"): 1}
    pid = int(pid_file.read_text())
    assert not os.path.exists(f"/proc/{pid}"), "the cancelled hook survived"
    # Nor anything in a workspace: the cancelled step's, or the one made ready for
    # "pre-never" (both went back to the pool, clean).
    assert not any(workspaces_left(executor.settings.executor_state_dir))


async def test_lease_expiry_runs_the_post_chain_once_for_aborted(executor) -> None:
    repo = unique("repo")
    await executor.hook(repo, unique("pre"), PRE)
    await _post_hooks(executor, repo)
    begin = await executor.begin(repo, lease_seconds=60)
    run_id = begin[0].run_id
    await asyncio.sleep(0.3)  # the watcher looks, nothing is due yet
    assert (await executor.get_run(run_id)).state == executor_pb2.RUN_STATE_AWAITING_END

    executor.clock.advance(61)
    run = await executor.wait_ended(run_id)
    assert run.outcome == library_pb2.BACKUP_OUTCOME_ABORTED and run.post_summary.post_chain_ran
    assert _post_runs(executor) == {("failure", "aborted"): 1, ("always", "aborted"): 1}

    late = summary_of(await executor.end(run_id, SUCCESS))
    assert late.outcome == library_pb2.BACKUP_OUTCOME_ABORTED
    assert sum(_post_runs(executor).values()) == 2


async def test_end_racing_the_lease_watcher_runs_the_post_chain_once(executor) -> None:
    repo = unique("repo")
    await executor.hook(
        repo,
        f"post-always-{repo}",
        POST,
        content=mark_script("sleep 0.3\n"),
        custom_run_on=library_pb2.RUN_ON_ALWAYS,
    )
    run_id = (await executor.begin(repo, lease_seconds=60))[0].run_id
    executor.clock.advance(61)
    ends = await asyncio.gather(*(executor.end(run_id, SUCCESS) for _ in range(3)))
    outcomes = {summary_of(events).outcome for events in ends}
    assert len(outcomes) == 1  # whoever won, everyone reports the same recorded end
    await executor.wait_ended(run_id)
    assert sum(_post_runs(executor).values()) == 1


async def test_a_client_leaving_end_backup_does_not_stop_the_post_chain(executor) -> None:
    repo = unique("repo")
    slow = mark_script(before="sleep 1\n")  # marks only after the sleep: it ran to its end
    await executor.hook(
        repo, f"post-always-{repo}", POST, content=slow, custom_run_on=library_pb2.RUN_ON_ALWAYS
    )
    run_id = (await executor.begin(repo))[0].run_id
    call = executor.stub.EndBackup(
        executor_pb2.EndBackupRequest(run_id=run_id, outcome=SUCCESS), timeout=30
    )
    async for response in call:
        if response.event.HasField("step_started"):
            break
    call.cancel()
    run = await executor.wait_ended(run_id)
    assert [s.status for s in run.steps] == [library_pb2.EXECUTION_STATUS_SUCCEEDED]
    assert _post_runs(executor) == {("always", "success"): 1}
