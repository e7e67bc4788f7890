"""`hookshelf run` and `hookshelf test` as subprocesses against real library and executor
processes: live output, JSON event lines that parse, exit codes."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cli_support import Stack, one_error_line, running_stack


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack(executor=True) as running:
        yield running


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def script(stack: Stack, name: str, content: str) -> str:
    path = stack.data / f"{name}.sh"
    path.write_text(content)
    ok(stack.cli("scripts", "create", name, "--file", str(path)))
    return name


def test_run_pre_opens_a_run_and_run_post_ends_it(stack: Stack) -> None:
    repository = f"run-{uuid.uuid4().hex[:6]}"
    marker: Path = stack.data / f"{repository}.marker"
    pre = script(stack, f"{repository}-pre", "#!/bin/sh\necho 'stopping app'\necho oops >&2\n")
    post = script(
        stack, f"{repository}-post", f'#!/bin/sh\necho "$HOOKSHELF_BACKUP_STATUS" > {marker}\n'
    )
    ok(stack.cli("assign", pre, "-r", repository, "--hook", "pre"))
    ok(stack.cli("assign", post, "-r", repository, "--hook", "post", "--run-on", "always"))

    opened = stack.cli("run", "-r", repository, "--hook", "pre")
    assert opened.returncode == 0, opened.stderr
    assert "stopping app" in opened.stdout and "oops" in opened.stderr
    assert "PROCEED" in opened.stdout
    run_id = opened.stdout.split("--run ", 1)[1].split()[0]
    assert not marker.exists()

    ended = stack.cli(
        "run", "-r", repository, "--hook", "post", "--run", run_id, "--outcome", "warning"
    )
    assert ended.returncode == 0, ended.stderr
    assert marker.read_text().strip() == "warning"

    # Ending it again replays the recorded summary and runs nothing.
    marker.unlink()
    assert stack.cli("run", "-r", repository, "--hook", "post", "--run", run_id).returncode == 0
    assert not marker.exists()


def test_run_json_prints_one_parsable_event_per_line_ending_with_the_summary(
    stack: Stack,
) -> None:
    repository = f"json-{uuid.uuid4().hex[:6]}"
    pre = script(stack, f"{repository}-pre", "#!/bin/sh\necho hello\nexit 75\n")
    ok(stack.cli("assign", pre, "-r", repository, "--hook", "pre"))

    result = stack.cli("run", "-r", repository, "--hook", "pre", "--json")

    assert result.returncode == 75, result.stderr  # the pre hook asked to skip
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert "plan" in events[0] and "summary" in events[-1]
    assert sum("summary" in e for e in events) == 1
    assert events[-1]["summary"]["verdict"] == "VERDICT_SKIP"
    assert len({e["run_id"] for e in events}) == 1


def test_run_post_without_a_run_id_is_one_line(stack: Stack) -> None:
    result = stack.cli("run", "-r", "r", "--hook", "post")
    assert result.returncode == 1
    assert "--run" in one_error_line(result)


def test_test_runs_a_script_and_exits_with_its_verdict(stack: Stack) -> None:
    name = script(stack, f"t-{uuid.uuid4().hex[:6]}", '#!/bin/sh\necho "hi ${WHO:-you}"\n')
    result = stack.cli("test", name, "--param", "WHO=tester")
    assert result.returncode == 0, result.stderr
    assert "hi tester" in result.stdout

    failing = stack.data / "failing.sh"
    failing.write_text("#!/bin/sh\necho bad >&2\nexit 4\n")
    result = stack.cli("test", "--file", str(failing), "--json")
    assert result.returncode == 1
    events = [json.loads(line) for line in result.stdout.splitlines()]
    finished = [e["step_finished"] for e in events if "step_finished" in e]
    assert finished[0]["exit_code"] == 4
