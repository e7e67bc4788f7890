"""`hookshelf backup` when the executor itself dies and comes back mid-run.

The wrapper's stream is lost; the client reattaches through GetBackupRun (or renews the
lease again once the executor is back) and the run still ends with its post chain, once.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cli_support import Stack, running_stack, start_service
from tests.e2e.test_backup_wrapper import hooked_repository, marks
from tests.patience import PATIENCE


@pytest.fixture
def stack() -> Iterator[Stack]:
    with running_stack(executor=True) as running:
        yield running


def restart_executor(stack: Stack) -> None:
    """SIGKILL the executor (no drain, no goodbye) and start it again on the same state."""
    old = stack.services.pop()
    old.process.send_signal(signal.SIGKILL)
    old.process.wait(timeout=PATIENCE)
    log = stack.data / f"executor-{uuid.uuid4().hex[:4]}.log"
    stack.services.append(start_service("executor_service", stack.env, log, old.target))


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


@pytest.mark.timeout(240)
def test_executor_killed_during_the_pre_chain_the_wrapper_reattaches(stack: Stack) -> None:
    started = stack.data / "pre.started"
    repository, marker = hooked_repository(stack, f"#!/bin/sh\ntouch {started}\nsleep 3\n")
    ran = stack.data / "command.ran"
    wrapper = stack.spawn("backup", "-r", repository, "--", "touch", str(ran))
    try:
        wait_for(started, wrapper)
        restart_executor(stack)
        _, stderr = wrapper.communicate(timeout=180)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()

    assert "Traceback" not in stderr
    assert "reattached" in stderr, stderr
    # The executor that came back found a run whose pre chain it could not finish: it
    # ended it (aborted) and ran the post chain; the wrapper learned it from the record.
    assert wrapper.returncode == 70, stderr + stack.logs()
    assert not ran.exists()
    assert marks(marker) == ["always:aborted", "failure-only:aborted"]


@pytest.mark.timeout(240)
def test_executor_killed_while_the_command_runs_the_run_still_ends_normally(
    stack: Stack,
) -> None:
    repository, marker = hooked_repository(stack)
    go = stack.data / "command.started"
    command = ["sh", "-c", f"touch {go}; sleep 4"]
    wrapper = stack.spawn("backup", "-r", repository, "--lease", "60", "--", *command)
    try:
        wait_for(go, wrapper)
        restart_executor(stack)
        _, stderr = wrapper.communicate(timeout=180)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()

    assert wrapper.returncode == 0, stderr + stack.logs()
    assert marks(marker) == ["always:success", "success-only:success"]
