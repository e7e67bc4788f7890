"""Steps through the service: process trees, the environment, the verified cache,
output streaming."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import grpc
import pytest

from executor_service.runner.output import CHUNK_LIMIT, FLUSH_DELAY
from shared.stubs import executor_pb2, library_pb2
from tests.patience import PATIENCE
from tests.service.executor_support import (  # noqa: F401 - fixtures
    POST,
    PRE,
    SUCCESS,
    mark_script,
    summary_of,
    unique,
)


@pytest.fixture
def database_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"


def _processes_with(needle: str) -> list[int]:
    """Pids whose command line holds needle (zombies have none)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def test_timeout_kills_the_whole_tree_even_escaped_and_double_forked(executor) -> None:
    # A sleep duration of this test's own: other test runs may share the machine.
    repo, tag = unique("repo"), f"1000.{random.randrange(10**8):08d}"
    content = (
        "#!/bin/bash\n"
        "echo partial-output\n"
        f"setsid sleep {tag}1 &\n"  # left the session and the group
        f"( ( sleep {tag}2 & ) & )\n"  # double fork: re-parented
        f"nohup sleep {tag}3 >/dev/null 2>&1 &\n"
        f"sleep {tag}4\n"
    )
    # Time enough for bash to print and scatter its tree on a busy machine: the test is
    # about what the timeout kills, not how soon.
    await executor.hook(repo, unique("tree"), PRE, content=content, custom_timeout_seconds=5)
    events = await executor.begin(repo)
    (finished,) = [e.step_finished for e in events if e.HasField("step_finished")]
    assert finished.status == library_pb2.EXECUTION_STATUS_TIMED_OUT
    assert finished.stdout_bytes == len(b"partial-output\n")
    output = b"".join(e.output.data for e in events if e.HasField("output"))
    assert output == b"partial-output\n"
    assert summary_of(events).verdict == executor_pb2.VERDICT_ABORT
    assert _processes_with(tag) == []


async def test_the_executor_environment_never_reaches_a_hook(executor, monkeypatch) -> None:
    # The executor runs in this process: whatever this process has, a hook must not see.
    monkeypatch.setenv("EXECUTOR_CANARY_SECRET", "canary-value")
    repo = unique("repo")
    await executor.hook(repo, unique("env"), PRE, content="#!/bin/bash\nenv\n", parameter_values={})
    events = await executor.begin(
        repo, job_id="j1", repository_path="/srv/repo", variables=executor.variables(GIVEN="g")
    )
    output = b"".join(e.output.data for e in events if e.HasField("output")).decode()
    environment = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    assert "canary" not in output.lower()
    system = {k for k in environment if k.startswith("HOOKSHELF_")}
    assert system == {
        "HOOKSHELF_RUN_ID",
        "HOOKSHELF_JOB_ID",
        "HOOKSHELF_REPOSITORY_ID",
        "HOOKSHELF_REPOSITORY_PATH",
        "HOOKSHELF_HOOK_TYPE",
        "HOOKSHELF_BACKUP_DATE",
        "HOOKSHELF_SCRIPT_NAME",
        "HOOKSHELF_EXECUTION_ID",
        "HOOKSHELF_OUTPUT",
    }
    # bash itself adds PWD, SHLVL and _.
    assert set(environment) - system == {
        "PATH",
        "HOME",
        "LANG",
        "MARKS",
        "GIVEN",
        "PWD",
        "SHLVL",
        "_",
    }
    assert environment["HOOKSHELF_HOOK_TYPE"] == "pre-backup"
    assert environment["HOOKSHELF_REPOSITORY_PATH"] == "/srv/repo"
    assert environment["HOOKSHELF_JOB_ID"] == "j1"
    assert environment["HOOKSHELF_RUN_ID"] == events[0].run_id
    assert environment["HOOKSHELF_BACKUP_DATE"].endswith("Z")
    assert environment["HOME"] == environment["PWD"]


async def test_content_is_verified_before_every_run(executor) -> None:
    repo = unique("repo")
    await executor.hook(repo, f"post-{repo}", POST, custom_run_on=library_pb2.RUN_ON_ALWAYS)
    cache = executor.settings.executor_state_dir / "cache" / "sha256"

    def tamper() -> None:
        (entry,) = list(cache.iterdir())
        entry.write_bytes(b'#!/bin/bash\necho tampered >> "$MARKS"\n')  # not the pinned bytes

    # A bad copy is dropped and fetched again from the library: the pinned content runs.
    run_id = (await executor.begin(repo))[0].run_id
    tamper()
    summary_of(await executor.end(run_id, SUCCESS))
    assert executor.lines() == [f"post-{repo} success"]

    # With the library away, a bad copy cannot be replaced: the step fails, as an event.
    run_id = (await executor.begin(repo))[0].run_id
    tamper()
    await executor.library.app.stop(0)
    events = await executor.end(run_id, SUCCESS)
    (finished,) = [e.step_finished for e in events if e.HasField("step_finished")]
    assert finished.status == library_pb2.EXECUTION_STATUS_FAILED
    assert "could not start" in finished.error_message
    assert executor.lines() == [f"post-{repo} success"]
    assert summary_of(events).failed_count == 1


async def test_output_is_streamed_in_coalesced_chunks_not_lines(executor) -> None:
    repo = unique("repo")
    script = "#!/bin/bash\nfor i in $(seq 1 20000); do echo line-$i; done\necho err >&2\n"
    await executor.hook(repo, unique("chatty"), PRE, content=script)
    events = await executor.begin(repo)
    chunks = [e.output for e in events if e.HasField("output")]
    stdout = [c for c in chunks if c.stream == executor_pb2.OUTPUT_STREAM_STDOUT]
    data = b"".join(c.data for c in stdout)
    assert data.count(b"\n") == 20000
    # 20,000 lines, a few dozen messages: a chunk goes when full or FLUSH_DELAY after its
    # first byte, so besides full ones there is at most one per FLUSH_DELAY of the time
    # the output took (and the final flush) - however slowly a busy machine runs bash.
    times = [
        e.time.ToNanoseconds() / 1e9
        for e in events
        if e.HasField("output") and e.output.stream == executor_pb2.OUTPUT_STREAM_STDOUT
    ]
    span = times[-1] - times[0]
    assert len(stdout) <= len(data) // CHUNK_LIMIT + span / FLUSH_DELAY + 2, (len(stdout), span)
    assert len(stdout) < 2000
    assert all(len(c.data) <= 64 * 1024 for c in stdout)
    offsets = [c.offset for c in stdout]
    assert offsets == [sum(len(c.data) for c in stdout[:i]) for i in range(len(stdout))]
    assert [c.data for c in chunks if c.stream == executor_pb2.OUTPUT_STREAM_STDERR] == [b"err\n"]


async def test_parameter_values_reach_the_hook_and_secrets_are_redacted(executor) -> None:
    repo = unique("repo")
    content = '#!/bin/bash\necho "user=${DB_USER} pass=${DB_PASSWORD}"\n'
    script_id = await executor.script(
        unique("dump"),
        content,
        parameters=[
            library_pb2.Parameter(name="DB_USER", type=library_pb2.PARAMETER_TYPE_TEXT),
            library_pb2.Parameter(name="DB_PASSWORD", type=library_pb2.PARAMETER_TYPE_SECRET),
        ],
    )
    await executor.assign(
        repo,
        script_id,
        PRE,
        parameter_values={"DB_USER": "backup", "DB_PASSWORD": "hunter2-secret"},
    )
    events = await executor.begin(repo)
    output = b"".join(e.output.data for e in events if e.HasField("output"))
    assert output == b"user=backup pass=***\n"
    await executor.delivered()
    (record,) = await executor.executions(run_id=events[0].run_id)
    assert b"hunter2" not in record.stdout.head + record.stdout.tail


async def _stalled(progress: Path, quiet: float = 2.0) -> int:
    """The hook's progress once it has not moved for ``quiet`` seconds (PATIENCE at most:
    a hook that never stalls fails here, or ends having written everything)."""
    deadline = time.monotonic() + PATIENCE
    last, since = None, time.monotonic()
    while True:
        now = time.monotonic()
        current = int(progress.read_text() or 0) if progress.exists() else None
        if current != last:
            last, since = current, now
        elif current is not None and now - since >= quiet:
            return current
        assert now < deadline, f"the hook never stalled (at block {current})"
        await asyncio.sleep(0.1)


async def test_a_slow_reader_slows_the_hook(executor, tmp_path) -> None:
    """Backpressure: while the client reads nothing, the hook blocks in write() after a
    bounded amount; memory does not fill with its output."""
    repo, progress = unique("repo"), tmp_path / "progress"
    blocks = 800  # of 64 KiB: 52 MB
    await executor.hook(
        repo,
        unique("firehose"),
        PRE,
        content=(
            f"#!/bin/bash\nfor i in $(seq 1 {blocks}); do head -c 65536 /dev/zero; "
            f"echo $i > {progress}; done\n"
        ),
    )
    call = executor.stub.BeginBackup(
        executor_pb2.BeginBackupRequest(repository_id=repo, variables=executor.variables()),
        timeout=60,
    )
    await call.read()  # the plan: the run is on
    # Stalled: no progress for a while (how soon it gets there depends on the machine).
    stalled_at = await _stalled(progress)
    assert stalled_at * 65536 < 20_000_000, stalled_at
    received = 0
    while (response := await call.read()) is not grpc.aio.EOF:
        if response.event.HasField("output"):
            received += len(response.event.output.data)
    assert received == blocks * 65536


async def test_a_cold_cache_is_filled_from_the_plans_without_a_fetch(executor, monkeypatch) -> None:
    """The plans carry their steps' content (ResolveHookPlan inline_content_max_bytes):
    a new chain costs no GetScriptContent call, and the journal's post plan keeps only
    digests."""
    repo = unique("repo")
    await executor.hook(repo, unique("pre"), PRE)
    await executor.hook(repo, unique("post"), POST, custom_run_on=library_pb2.RUN_ON_ALWAYS)
    cache = executor.app.runs.plans.cache
    fetched: list[str] = []
    fetch = cache._fetch

    async def counting_fetch(digest: str) -> bytes:
        fetched.append(digest)
        return await fetch(digest)

    monkeypatch.setattr(cache, "_fetch", counting_fetch)
    begin = await executor.begin(repo)
    assert summary_of(begin).verdict == executor_pb2.VERDICT_PROCEED
    run = await executor.app.journal.get_run(begin[0].run_id)
    assert run is not None and [step.content for step in run.post_plan] == [""]
    summary_of(await executor.end(begin[0].run_id, SUCCESS))
    assert [line.split()[1] for line in executor.lines()] == ["pre", "success"]
    assert fetched == []


async def test_each_step_gets_a_clean_workspace_and_its_own_pinned_script(executor) -> None:
    """Workspaces are reused and scripts written over the file an earlier step ran
    (workspace.py): still, a step sees nothing an earlier step left, and what a hook does
    to its own file never reaches a later run."""
    repo = unique("repo")
    look = (
        'echo "$HOOKSHELF_SCRIPT_NAME $(basename "$0" | cut -d. -f1) [$(ls -A | tr "\\n" " ")]'
        '[$(cat "$HOOKSHELF_OUTPUT")]" >> "$MARKS"\n'
    )
    await executor.hook(
        repo,
        "writes-output",
        PRE,
        order=1,
        content=f'#!/bin/bash\n{look}echo SECRET_TOKEN=abc >> "$HOOKSHELF_OUTPUT"\n',
    )
    await executor.hook(
        repo, "leaves-a-file", PRE, order=2, content=f"#!/bin/bash\n{look}echo data > dump.sql\n"
    )
    await executor.hook(
        repo,
        "edits-itself",
        PRE,
        order=3,
        # Appends to its own file, in a workspace it otherwise leaves clean (so it is kept):
        # the next script must be written over it. One line, so this run ends first.
        content=f'#!/bin/bash\n{look}printf \'echo forged >> "$MARKS"\\n\' >> "$0"; exit 0\n',
    )
    await executor.hook(repo, "looks", PRE, order=4, content=f"#!/bin/bash\n{look}")
    for _ in range(2):
        run_id = summary_of(events := await executor.begin(repo)) and events[0].run_id
        assert summary_of(events).succeeded_count == 4
        summary_of(await executor.end(run_id, SUCCESS))
    expected = [
        "writes-output writes-output [hookshelf-output ][]",
        "leaves-a-file leaves-a-file [hookshelf-output ][]",
        "edits-itself edits-itself [hookshelf-output ][]",
        "looks looks [hookshelf-output ][]",
    ]
    assert executor.lines() == expected * 2
