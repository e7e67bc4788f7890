"""`hookshelf backup -- COMMAND` around real borg, against real library and executor processes.

Each test gets a repository of its own whose post hooks write one line per run to a
marker file: "<hook>:<HOOKSHELF_BACKUP_STATUS>". That file is what a user would look at:
which post hooks ran, for which outcome.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.client import LibraryClient
from shared.stubs import library_pb2 as pb
from tests.e2e.cli_support import HOOKSHELF, Stack, clean_env, one_error_line, running_stack

BORG = shutil.which("borg")

POST_HOOKS = {  # name → run_on
    "always": pb.RUN_ON_ALWAYS,
    "success-only": pb.RUN_ON_SUCCESS,
    "warning-only": pb.RUN_ON_WARNING,
    "failure-only": pb.RUN_ON_FAILURE,
}
PRE_OK = '#!/bin/sh\necho "pre hook ran"\necho "SNAPSHOT_NAME=snap-42" >> "$HOOKSHELF_OUTPUT"\n'


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if BORG is None:
        pytest.fail(
            "borg is required (never skipped): apt-get install -y borgbackup", pytrace=False
        )
    with running_stack(executor=True) as running:
        borg_env = {
            "BORG_BASE_DIR": str(running.data / "borg-home"),
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        }
        running.env.update(borg_env)
        (running.data / "source").mkdir()
        (running.data / "source" / "file.txt").write_text("backed up\n")
        subprocess.run(
            [BORG, "init", "--encryption=none", str(running.data / "borg-repo")],
            env=running.env,
            check=True,
            capture_output=True,
        )
        yield running


def hooked_repository(stack: Stack, pre_content: str = PRE_OK) -> tuple[str, Path]:
    """A repository with one pre hook and the four post hooks; returns (id, marker file)."""
    return asyncio.run(_hooked_repository(stack, pre_content))


async def _hooked_repository(stack: Stack, pre_content: str) -> tuple[str, Path]:
    repository = f"repo-{uuid.uuid4().hex[:8]}"
    marker = stack.data / f"{repository}.marker"
    async with LibraryClient(stack.env["HOOKSHELF_LIBRARY_TARGET"]) as library:
        pre = await library.create_script(
            pb.CreateScriptRequest(script=pb.Script(name=f"{repository}-pre", content=pre_content))
        )
        await library.assign_script(
            pb.AssignScriptRequest(
                assignment=pb.Assignment(
                    repository_id=repository,
                    script_id=pre.script.id,
                    hook_type=pb.HOOK_TYPE_PRE_BACKUP,
                    enabled=True,
                )
            )
        )
        for order, (name, run_on) in enumerate(POST_HOOKS.items()):
            content = f'#!/bin/sh\necho "{name}:$HOOKSHELF_BACKUP_STATUS" >> "${{MARKER}}"\n'
            made = await library.create_script(
                pb.CreateScriptRequest(
                    script=pb.Script(
                        name=f"{repository}-{name}",
                        content=content,
                        default_run_on=run_on,
                    )
                )
            )
            await library.assign_script(
                pb.AssignScriptRequest(
                    assignment=pb.Assignment(
                        repository_id=repository,
                        script_id=made.script.id,
                        hook_type=pb.HOOK_TYPE_POST_BACKUP,
                        execution_order=order,
                        enabled=True,
                        parameter_values={"MARKER": str(marker)},
                    )
                )
            )
    return repository, marker


def marks(marker: Path) -> list[str]:
    return marker.read_text().split() if marker.exists() else []


def borg_create(stack: Stack, archive: str, *sources: str, repo: str = "borg-repo") -> list[str]:
    return [
        "borg",
        "create",
        f"{stack.data / repo}::{archive}",
        *(sources or [str(stack.data / "source")]),
    ]


def test_a_successful_borg_backup_exits_0_and_runs_the_success_hooks(stack: Stack) -> None:
    repository, marker = hooked_repository(stack)

    result = stack.cli(
        "backup", "--repository", repository, "--job", "j1", "--", *borg_create(stack, "ok-{now}")
    )

    assert result.returncode == 0, result.stderr + stack.logs()
    assert "pre hook ran" in result.stderr
    assert marks(marker) == ["always:success", "success-only:success"]
    archives = subprocess.run(
        [BORG, "list", "--short", str(stack.data / "borg-repo")],
        env=stack.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ok-" in archives
    history = json.loads(stack.cli("history", "--repository", repository, "--json").stdout)
    assert {e["script_name"] for e in history} == {
        f"{repository}-pre",
        f"{repository}-always",
        f"{repository}-success-only",
    }


def test_a_borg_warning_exits_1_and_runs_the_warning_hooks(stack: Stack) -> None:
    # A source path that does not exist is a warning for borg (exit 1), not an error.
    repository, marker = hooked_repository(stack)
    command = borg_create(stack, "warn-{now}", str(stack.data / "source"), "/nonexistent-path")

    result = stack.cli("backup", "-r", repository, "--", *command)

    assert result.returncode == 1, result.stderr
    assert marks(marker) == ["always:warning", "warning-only:warning"]


def test_a_borg_error_exits_2_and_runs_the_failure_hooks(stack: Stack) -> None:
    repository, marker = hooked_repository(stack)
    command = borg_create(stack, "fail-{now}", repo="no-such-repo")

    result = stack.cli("backup", "-r", repository, "--", *command)

    assert result.returncode == 2, result.stderr
    assert "does not exist" in result.stderr
    assert marks(marker) == ["always:failure", "failure-only:failure"]


def test_exit_statuses_map_to_outcomes_for_other_commands(stack: Stack) -> None:
    repository, marker = hooked_repository(stack)
    # Not borg: any non-zero status is a failure...
    assert stack.cli("backup", "-r", repository, "--", "sh", "-c", "exit 1").returncode == 1
    assert marks(marker) == ["always:failure", "failure-only:failure"]
    marker.unlink()
    # ...unless --borg says the command speaks borg's exit codes.
    forced = stack.cli("backup", "-r", repository, "--borg", "--", "sh", "-c", "exit 1")
    assert forced.returncode == 1
    assert marks(marker) == ["always:warning", "warning-only:warning"]


def test_variables_the_pre_hooks_return_reach_the_command(stack: Stack) -> None:
    repository, _ = hooked_repository(stack)
    seen = stack.data / f"{repository}.env"
    command = ["sh", "-c", f'echo "$SNAPSHOT_NAME $HOOKSHELF_RUN_ID" > {seen}; echo to-stdout']

    result = stack.cli("backup", "-r", repository, "--", *command)

    assert result.returncode == 0, result.stderr
    snapshot, run_id = seen.read_text().split()
    assert snapshot == "snap-42" and run_id
    assert result.stdout == "to-stdout\n"  # stdout belongs to COMMAND; hooks go to stderr


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_backup_kills_the_command_and_the_post_chain_still_runs(
    stack: Stack, signum: int, status: int
) -> None:
    repository, marker = hooked_repository(stack)
    pid_file = stack.data / f"{repository}.pid"
    wrapper = stack.spawn(
        "backup", "-r", repository, "--", "sh", "-c", f"echo $$ > {pid_file}; exec sleep 120"
    )
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert wrapper.poll() is None, wrapper.communicate()
            assert time.monotonic() < deadline, "COMMAND never started"
            time.sleep(0.1)
        command_pid = int(pid_file.read_text())

        wrapper.send_signal(signum)
        _, stderr = wrapper.communicate(timeout=60)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()

    assert wrapper.returncode == status, stderr
    assert "Traceback" not in stderr
    assert marks(marker) == ["always:cancelled", "failure-only:cancelled"]
    with pytest.raises(ProcessLookupError):
        os.kill(command_pid, 0)  # the command (sleep) is gone


def test_a_pre_hook_asking_to_skip_exits_75_without_running_the_command(
    stack: Stack,
) -> None:
    repository, marker = hooked_repository(stack, "#!/bin/sh\necho skipping\nexit 75\n")
    ran = stack.data / f"{repository}.ran"

    result = stack.cli("backup", "-r", repository, "--", "touch", str(ran))

    assert result.returncode == 75, result.stderr
    assert not ran.exists()
    assert marks(marker) == ["always:skipped"]


def test_a_failing_pre_hook_aborts_with_70_without_running_the_command(
    stack: Stack,
) -> None:
    repository, marker = hooked_repository(stack, "#!/bin/sh\necho broken >&2\nexit 3\n")
    ran = stack.data / f"{repository}.ran"

    result = stack.cli("backup", "-r", repository, "--", "touch", str(ran))

    assert result.returncode == 70, result.stderr
    assert "broken" in result.stderr
    assert not ran.exists()
    assert marks(marker) == ["always:aborted", "failure-only:aborted"]


def test_a_bad_repository_id_is_one_line_and_exit_64(stack: Stack) -> None:
    result = stack.cli("backup", "-r", "x" * 300, "--", "true")
    assert result.returncode == 64
    assert "repository" in one_error_line(result)


def test_a_missing_executor_is_one_line_and_exit_69(tmp_path: Path) -> None:
    target = f"unix:{tmp_path}/absent.sock"
    result = subprocess.run(
        [str(HOOKSHELF), "backup", "-r", "r", "--", "true"],
        env=clean_env(HOOKSHELF_EXECUTOR_TARGET=target),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 69
    assert one_error_line(result) == (
        f"hookshelf: cannot reach the executor at {target}: is it running?"
    )


@pytest.mark.timeout(300)
def test_a_sigkilled_wrapper_leaves_the_post_chain_to_the_lease(stack: Stack) -> None:
    repository, marker = hooked_repository(stack)
    pid_file = stack.data / f"{repository}.pid"
    wrapper = stack.spawn(
        "backup",
        "-r",
        repository,
        "--lease",
        "60",
        "--",
        "sh",
        "-c",
        f"echo $$ > {pid_file}; exec sleep 600",
    )
    command_pid = 0
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert time.monotonic() < deadline and wrapper.poll() is None
            time.sleep(0.1)
        command_pid = int(pid_file.read_text())
        wrapper.kill()
        wrapper.wait(timeout=60)
        assert marks(marker) == []  # nothing yet: the run waits for its lease

        # The 60 s lease, the executor's watch interval, then the whole post chain (its
        # second step is not done the moment the first one has marked).
        deadline = time.monotonic() + 150
        while len(marks(marker)) < 2:
            assert time.monotonic() < deadline, f"no post chain from the lease: {marks(marker)}"
            time.sleep(1)
        assert marks(marker) == ["always:aborted", "failure-only:aborted"]
    finally:
        if command_pid:
            try:
                os.killpg(command_pid, signal.SIGKILL)  # the orphaned COMMAND is ours
            except ProcessLookupError:
                pass


def test_a_signal_during_the_pre_chain_still_runs_the_post_chain(stack: Stack) -> None:
    started = stack.data / f"pre-{uuid.uuid4().hex[:6]}.started"
    slow_pre = f"#!/bin/sh\ntouch {started}\nsleep 120\n"
    repository, marker = hooked_repository(stack, slow_pre)
    ran = stack.data / f"{repository}.ran"
    wrapper = stack.spawn("backup", "-r", repository, "--", "touch", str(ran))
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert wrapper.poll() is None and time.monotonic() < deadline, wrapper.communicate()
            time.sleep(0.1)
        wrapper.send_signal(signal.SIGINT)
        _, stderr = wrapper.communicate(timeout=60)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()

    assert wrapper.returncode == 130, stderr
    assert not ran.exists()
    assert marks(marker) == ["always:cancelled", "failure-only:cancelled"]
