"""No process outlives its step: timeout, cancel, task cancellation, leftovers after a normal
exit — including descendants that left the session (setsid) and double forks. Checked the
way an operator would: by looking for them in the process table."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import psutil
import pytest

from executor_service.runner.environment import build_environment
from executor_service.runner.output import OutputChunk
from executor_service.runner.step import StepResult, StepSpec, run_step
from executor_service.runner.subreaper import become_subreaper, is_subreaper
from shared.stubs import library_pb2
from tests.patience import PATIENCE, eventually

Status = library_pb2.ExecutionStatus


@pytest.fixture(autouse=True)
def subreaper() -> None:
    become_subreaper()


@pytest.fixture
def work_root(tmp_path: Path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def tag() -> str:
    """A unique sleep duration, e.g. 1000.48213: marks this test's processes in `ps`."""
    return f"1000.{os.getpid() % 1000:03d}{random.randrange(10**6):06d}"


def survivors(tag: str) -> list[psutil.Process]:
    """Live processes anywhere on the machine whose argv carries the tag."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if process.info["status"] != psutil.STATUS_ZOMBIE and any(tag in a for a in cmdline):
            found.append(process)
    return found


def zombie_children() -> list[psutil.Process]:
    return [
        child for child in psutil.Process().children() if child.status() == psutil.STATUS_ZOMBIE
    ]


class Collector:
    def __init__(self, ready: bytes = b"ready") -> None:
        self.data = b""
        self.ready = asyncio.Event()
        self._marker = ready

    async def __call__(self, chunk: OutputChunk) -> None:
        self.data += chunk.data
        if self._marker in self.data:
            self.ready.set()


def spec(content: str, *, timeout: float = 30.0, grace: float = 1.0) -> StepSpec:
    return StepSpec(
        execution_id="exec-tree",
        script_name="tree",
        content=content.encode(),
        digest="sha256:" + "0" * 64,
        timeout_seconds=timeout,
        environment=build_environment(system={}, variables={}, parameters={}),
        kill_grace_seconds=grace,
    )


def escaping_tree(tag: str) -> str:
    """A script whose descendants scatter: one leaves the session, one is double-forked
    (its parent exits, it is re-parented to us), one is nohup'd, one is in the foreground."""
    return (
        f"setsid sleep {tag}1 &\n"
        f"(sleep {tag}2 &) &\n"
        f"nohup sleep {tag}3 >/dev/null 2>&1 &\n"
        f"setsid bash -c '(sleep {tag}4 &) &' &\n"
        "sleep 0.3\n"  # let them all start
        "echo ready\n"
    )


async def wait_for_survivors(tag: str, expected: int) -> None:
    """Until the tree has all started (``sleep 0.3`` in the script is no promise on a
    busy machine): a process forked after the kill is not what the test is about."""
    await eventually(lambda: len(survivors(tag)) >= expected, f"{expected} processes running")


def test_subreaper_flag() -> None:
    assert is_subreaper()


async def test_timeout_kills_the_whole_tree_and_keeps_partial_output(
    work_root: Path, tag: str
) -> None:
    script = escaping_tree(tag) + f"echo partial >&2\nsleep {tag}5\n"
    # Time enough to scatter the tree and print on a busy machine: what the timeout kills
    # and keeps is the point, not how soon.
    result = await run_step(spec(script, timeout=5), Collector(), work_root=work_root)
    assert result.status == Status.EXECUTION_STATUS_TIMED_OUT
    assert result.exit_code == -15
    assert result.error_message == "timed out after 5 s; ended by SIGTERM"
    assert result.stdout.head == b"ready\n"
    assert result.stderr.head == b"partial\n"
    # Ended at the timeout (plus the grace and the sweep), not at the end of its sleeps.
    assert 5000 <= result.duration_ms < 60_000
    assert survivors(tag) == []
    assert zombie_children() == []
    assert list(work_root.iterdir()) == []


async def test_sigterm_ignored_means_sigkill_after_the_grace(work_root: Path, tag: str) -> None:
    script = (
        f"trap '' TERM\n(trap '' TERM; setsid sleep {tag}1 & wait) &\necho ready\nsleep {tag}2\n"
    )
    started = time.monotonic()
    result = await run_step(spec(script, timeout=0.5, grace=0.5), Collector(), work_root=work_root)
    assert result.status == Status.EXECUTION_STATUS_TIMED_OUT
    assert result.exit_code == -9
    assert "SIGKILL after 0.5 s" in result.error_message
    assert time.monotonic() - started >= 1.0
    assert survivors(tag) == []


async def test_grace_lets_a_trap_clean_up(work_root: Path) -> None:
    script = (
        "trap 'echo restarting containers; sleep 0.2; echo done; exit 0' TERM\n"
        "echo ready\nwhile true; do sleep 0.05; done\n"
    )
    result = await run_step(spec(script, timeout=0.5, grace=3), Collector(), work_root=work_root)
    assert result.status == Status.EXECUTION_STATUS_TIMED_OUT
    assert result.exit_code == 0
    assert result.stdout.head == b"ready\nrestarting containers\ndone\n"
    assert result.error_message.endswith("ended by SIGTERM")


async def test_leftovers_are_killed_after_a_normal_exit(work_root: Path, tag: str) -> None:
    script = escaping_tree(tag) + "exit 0\n"
    result = await run_step(spec(script), Collector(), work_root=work_root)
    assert result.status == Status.EXECUTION_STATUS_SUCCEEDED
    assert result.exit_code == 0
    assert result.stdout.head == b"ready\n"
    assert result.warnings and "background process" in result.warnings[0]
    assert survivors(tag) == []
    assert zombie_children() == []


async def test_cancel_event_kills_and_reports_cancelled(work_root: Path, tag: str) -> None:
    cancel = asyncio.Event()
    collector = Collector()
    task = asyncio.create_task(
        run_step(
            spec(escaping_tree(tag) + f"sleep {tag}5\n"),
            collector,
            work_root=work_root,
            cancel=cancel,
        )
    )
    await asyncio.wait_for(collector.ready.wait(), PATIENCE)
    await wait_for_survivors(tag, 5)
    assert len(survivors(tag)) == 5
    cancel.set()
    result: StepResult = await task
    assert result.status == Status.EXECUTION_STATUS_CANCELLED
    assert result.error_message == "cancelled; ended by SIGTERM"
    assert result.stdout.head == b"ready\n"
    assert survivors(tag) == []
    assert list(work_root.iterdir()) == []


async def test_task_cancellation_kills_the_tree_and_propagates(work_root: Path, tag: str) -> None:
    collector = Collector()
    task = asyncio.create_task(
        run_step(spec(escaping_tree(tag) + f"sleep {tag}5\n"), collector, work_root=work_root)
    )
    await asyncio.wait_for(collector.ready.wait(), PATIENCE)
    await wait_for_survivors(tag, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert survivors(tag) == []
    assert list(work_root.iterdir()) == []


async def test_cancelled_twice_kills_without_waiting_for_the_grace(
    work_root: Path, tag: str
) -> None:
    collector = Collector()
    script = f"trap '' TERM\necho ready\nsleep {tag}1\n"
    task = asyncio.create_task(run_step(spec(script, grace=30), collector, work_root=work_root))
    await asyncio.wait_for(collector.ready.wait(), PATIENCE)
    task.cancel()
    await asyncio.sleep(0.2)  # now in the 30 s grace (entered without awaiting anything)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 20  # well short of the 30 s grace
    await eventually(lambda: not survivors(tag), "the step's processes gone")


async def test_failing_emit_kills_the_tree_and_propagates(work_root: Path, tag: str) -> None:
    async def emit(chunk: OutputChunk) -> None:
        if b"ready" in chunk.data:
            raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        await run_step(spec(escaping_tree(tag) + f"sleep {tag}5\n"), emit, work_root=work_root)
    assert survivors(tag) == []


async def test_short_lived_detached_orphans_leave_no_zombies(work_root: Path) -> None:
    # Each `setsid -f true` is re-parented to us and dies before any scan sees it alive.
    script = "for i in $(seq 1 20); do setsid -f true; done\nsleep 0.1\n"
    for _ in range(3):
        await run_step(spec(script), Collector(), work_root=work_root)
    await run_step(spec("sleep 1.5"), Collector(), work_root=work_root)
    assert zombie_children() == []


async def test_pipe_held_open_by_an_unfound_process_does_not_hang(
    work_root: Path, tag: str
) -> None:
    # The documented blind spot: `env -i` wipes the marker, setsid leaves the session, the
    # parent exits at once, and by the first scan nothing links it to the step. It keeps
    # stdout open: the step must still end, and say why its output was cut off.
    script = f"setsid -f env -i /bin/sh -c 'exec sleep {tag}1'\nsleep 0.3\necho done\n"
    started = time.monotonic()
    try:
        result = await run_step(spec(script), Collector(), work_root=work_root)
        assert result.status == Status.EXECUTION_STATUS_SUCCEEDED
        assert result.stdout.head == b"done\n"
        assert time.monotonic() - started < 60  # it does end: the stray sleeps 1000 s
        assert len(survivors(tag)) == 1
        assert any("stdout was still open" in warning for warning in result.warnings)
    finally:
        for process in survivors(tag):
            process.kill()


async def test_output_after_the_step_was_cancelled_is_not_sent(work_root: Path) -> None:
    """Pumps start when output first arrives (step.py): one must not start, and emit, for
    what a dying step writes during its grace once the step's task was cancelled."""
    collector = Collector()
    script = (
        "trap 'while true; do echo dying >&2; sleep 0.02; done' TERM\n"
        "echo ready\nsleep 100 &\nwait\n"
    )
    task = asyncio.create_task(run_step(spec(script, grace=1), collector, work_root=work_root))
    await asyncio.wait_for(collector.ready.wait(), PATIENCE)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.3)
    assert collector.data == b"ready\n"
