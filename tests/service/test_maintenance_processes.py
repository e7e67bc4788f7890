"""Tracked scripts as real processes, the way operators and replicas run them: the
command-line forms, two processes racing for the same script (exactly one executes),
and a process killed with SIGKILL in the middle of a run (the next caller marks it
interrupted, it does not stay pending). The lock is per backend, so both run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from library_service.maintenance.framework import tracker
from library_service.maintenance.framework.store import open_database
from library_service.store import migrate
from tests.patience import eventually_sync

REPO = Path(__file__).resolve().parents[2]

SAMPLE = textwrap.dedent(
    """
    import asyncio
    import os
    from pathlib import Path

    from library_service.maintenance.framework import BaseScript, main, run_cli


    class Sample(BaseScript):
        '''A sample script: appends to a marker file, sleeps, may fail its verify.'''

        heartbeat_seconds = 0.2

        def __init__(self):
            super().__init__("sample")

        async def execute(self, db):
            marker = Path(os.environ["SAMPLE_MARKER"])
            with marker.open("a") as handle:
                handle.write(f"run {os.getpid()}\\n")
            self.log("executing")
            await asyncio.sleep(float(os.environ.get("SAMPLE_SLEEP", "0")))
            gate = os.environ.get("SAMPLE_GATE")
            for _ in range(1200):  # until the test opens the gate (a minute at most)
                if not gate or Path(gate).exists():
                    break
                await asyncio.sleep(0.05)
            self.details = {"pid": os.getpid()}

        async def verify(self, db):
            return os.environ.get("SAMPLE_VERIFY", "pass") == "pass"

        async def rollback(self, db):
            with Path(os.environ["SAMPLE_MARKER"]).open("a") as handle:
                handle.write(f"rollback {self.target.details['pid']}\\n")


    if __name__ == "__main__":
        if os.environ.get("SAMPLE_MAIN"):
            main(Sample())  # the older spelling
        run_cli(Sample())
    """
)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "sample.py"
    path.write_text(SAMPLE)
    return path


@pytest.fixture
async def migrated(database_url: str) -> str:
    """Migrated beforehand: two processes racing to create a fresh schema is another
    story than two racing for a script."""
    await migrate.upgrade(database_url)
    return database_url


def environment(url: str, marker: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HOOKSHELF_DATABASE_URL": url,
        "SAMPLE_MARKER": str(marker),
        **extra,
    }


def start(sample: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(sample), *args],
        env=env,
        cwd=sample.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(sample: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(sample), *args],
        env=env,
        cwd=sample.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def lines(marker: Path) -> list[str]:
    return marker.read_text().splitlines() if marker.exists() else []


def wait_for_execution(marker: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not lines(marker):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the script never started executing"
        time.sleep(0.05)


async def statuses(url: str) -> list[tuple[str, str, str]]:
    db = await open_database(url)
    try:
        return [(r.action, r.status, r.error) for r in await tracker.recent(db.engine, "sample")]
    finally:
        await db.close()


async def test_two_processes_at_once_execute_the_script_once(
    sample: Path, migrated: str, tmp_path: Path
) -> None:
    marker, gate = tmp_path / "marker", tmp_path / "gate"
    # Whichever gets the script runs it until the other has given up: both really are
    # at it at once, however slowly either process starts.
    env = environment(migrated, marker, SAMPLE_GATE=str(gate))
    first, second = start(sample, env), start(sample, env, "run")
    try:
        [executing] = eventually_sync(lambda: lines(marker), "one process executing")
        running_pid = int(executing.split()[1])
        other = second if running_pid == first.pid else first
        other.wait(60)
    finally:
        gate.touch()
    results = [(p.wait(60), *p.communicate()) for p in (first, second)]

    assert len(lines(marker)) == 1
    assert sorted(code for code, _, _ in results) == [0, 3]
    _, _, busy_stderr = next(r for r in results if r[0] == 3)
    assert "sample is already running: run 1" in busy_stderr
    assert f"pid {lines(marker)[0].split()[1]}" in busy_stderr
    assert await statuses(migrated) == [("run", "success", "")]


async def test_a_killed_run_is_marked_interrupted_by_the_next_caller(
    sample: Path, migrated: str, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    victim = start(sample, environment(migrated, marker, SAMPLE_SLEEP="60"))
    wait_for_execution(marker, victim)
    assert (await statuses(migrated))[0][1] == "pending"
    victim.send_signal(signal.SIGKILL)
    victim.wait(60)

    status = run(sample, environment(migrated, marker), "status")
    assert status.returncode == 0, status.stderr
    assert "interrupted: its process is gone" in status.stdout
    [(action, state, error)] = await statuses(migrated)
    assert (action, state) == ("run", "failed")
    assert f"pid {victim.pid}" in error

    # Not a success: the next run executes it again.
    again = run(sample, environment(migrated, marker))
    assert again.returncode == 0, again.stderr
    assert len(lines(marker)) == 2


async def test_a_killed_run_is_marked_interrupted_by_the_next_run(
    sample: Path, migrated: str, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    victim = start(sample, environment(migrated, marker, SAMPLE_SLEEP="60"))
    wait_for_execution(marker, victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait(60)

    again = run(sample, environment(migrated, marker))
    assert again.returncode == 0, again.stderr
    assert [s[:2] for s in await statuses(migrated)] == [("run", "success"), ("run", "failed")]


async def test_sigterm_records_the_run_as_interrupted_at_once(
    sample: Path, migrated: str, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    victim = start(sample, environment(migrated, marker, SAMPLE_SLEEP="60"))
    wait_for_execution(marker, victim)
    victim.send_signal(signal.SIGTERM)
    assert victim.wait(60) == 130
    [(_, state, error)] = await statuses(migrated)
    assert (state, error) == ("failed", "interrupted: cancelled")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_command_line_forms(sample: Path, migrated: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    env = environment(migrated, marker)

    def check(args: list[str], code: int, text: str, executions: int) -> None:
        result = run(sample, env, *args)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert text in result.stdout + result.stderr, (args, result.stdout, result.stderr)
        assert len([line for line in lines(marker) if line.startswith("run")]) == executions

    check([], 0, "sample: ran successfully (run 1", 1)  # bare = run
    check([], 0, "already ran successfully", 1)
    check(["--force"], 0, "ran successfully (run 2", 2)
    check(["run"], 0, "already ran successfully", 2)
    check(["run", "--force"], 0, "ran successfully (run 3", 3)
    check(["rollback"], 0, "run 3 rolled back", 3)
    assert lines(marker)[-1].startswith("rollback")
    check(["run"], 0, "ran successfully (run 5", 4)  # rolled back: not done any more
    check(["status"], 0, "#4 rollback success", 4)
    check(["run", "--bogus"], 2, "unrecognized arguments: --bogus", 4)

    env["SAMPLE_VERIFY"] = "fail"
    check(["--force"], 1, "verify failed", 5)
    env["SAMPLE_MAIN"] = "1"
    check(["status"], 0, "sample: failed (run 6)", 5)
