"""run_step with real child processes: statuses, interpreter, environment, working
directory, stdin, output streaming and capture, redaction, output variables."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import urllib.parse
from pathlib import Path

import pytest

from executor_service.runner.capture import HEAD_LIMIT, TAIL_LIMIT
from executor_service.runner.environment import BASE_PATH, build_environment
from executor_service.runner.output import CHUNK_LIMIT, FLUSH_DELAY, OutputChunk
from executor_service.runner.step import StepResult, StepSpec, run_step
from executor_service.runner.subreaper import become_subreaper
from shared.stubs import executor_pb2, library_pb2

STDOUT = executor_pb2.OUTPUT_STREAM_STDOUT
STDERR = executor_pb2.OUTPUT_STREAM_STDERR
Status = library_pb2.ExecutionStatus


@pytest.fixture(autouse=True)
def subreaper() -> None:
    become_subreaper()


@pytest.fixture
def work_root(tmp_path: Path) -> Path:
    return tmp_path / "work"


class Collector:
    """An emit that keeps every chunk and when it arrived."""

    def __init__(self) -> None:
        self.chunks: list[OutputChunk] = []
        self.arrivals: list[float] = []

    async def __call__(self, chunk: OutputChunk) -> None:
        self.chunks.append(chunk)
        self.arrivals.append(time.monotonic())

    def stream(self, stream: int) -> bytes:
        return b"".join(chunk.data for chunk in self.chunks if chunk.stream == stream)


def spec(content: str | bytes, **overrides: object) -> StepSpec:
    fields: dict[str, object] = {
        "execution_id": "exec-1",
        "script_name": "test hook",
        "content": content.encode() if isinstance(content, str) else content,
        "digest": "sha256:" + "0" * 64,
        "timeout_seconds": 30.0,
        "environment": build_environment(
            system={"HOOKSHELF_RUN_ID": "run-1", "HOOKSHELF_HOOK_TYPE": "PRE"},
            variables={"FROM_ORCHESTRATOR": "yes"},
            parameters={"PARAM": "value"},
        ),
    }
    fields.update(overrides)
    return StepSpec(**fields)  # type: ignore[arg-type]


async def run(content: str | bytes, work_root: Path, **overrides: object) -> StepResult:
    return await run_step(spec(content, **overrides), Collector(), work_root=work_root)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (0, Status.EXECUTION_STATUS_SUCCEEDED),
        (75, Status.EXECUTION_STATUS_SKIP_REQUESTED),
        (1, Status.EXECUTION_STATUS_FAILED),
        (2, Status.EXECUTION_STATUS_FAILED),
        (74, Status.EXECUTION_STATUS_FAILED),
        (255, Status.EXECUTION_STATUS_FAILED),
    ],
)
async def test_exit_code_decides_status(work_root: Path, code: int, status: int) -> None:
    result = await run(f"exit {code}", work_root)
    assert (result.status, result.exit_code, result.error_message) == (status, code, "")
    assert result.started_at.tzinfo is not None
    assert result.ended_at >= result.started_at
    assert 0 <= result.duration_ms < 10_000


async def test_killed_by_a_signal_is_failed(work_root: Path) -> None:
    result = await run("kill -USR1 $$", work_root)
    assert result.status == Status.EXECUTION_STATUS_FAILED
    assert result.exit_code == -10
    assert result.error_message == "killed by SIGUSR1"


async def test_shebang_is_honoured(work_root: Path) -> None:
    script = "#!/usr/bin/env python3\nimport sys\nprint(sys.version_info[0], end='')\n"
    result = await run(script, work_root)
    assert result.status == Status.EXECUTION_STATUS_SUCCEEDED
    assert result.stdout.head == b"3"


async def test_no_shebang_runs_with_bash(work_root: Path) -> None:
    result = await run('echo "$BASH_VERSION" | cut -c1', work_root)
    assert result.stdout.head.strip().isdigit()


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        ("#!/nonexistent/interpreter\necho hi\n", 127, "'/nonexistent/interpreter'"),
        ("#!/bin/bash\r\necho hi\r\n", 127, "Windows line endings"),
        ("#!/tmp\n", 126, "cannot start: Permission denied"),
        ("#!\n", 126, "cannot start"),
    ],
)
async def test_cannot_start_is_a_failed_result(
    work_root: Path, content: str, code: int, message: str
) -> None:
    result = await run(content, work_root)
    assert result.status == Status.EXECUTION_STATUS_FAILED
    assert result.exit_code == code
    assert message in result.error_message
    assert list(work_root.iterdir()) == []


async def test_environment_is_built_from_scratch(
    work_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVER_SECRET_MARKER", "must-not-leak")
    script = "#!/usr/bin/python3\nimport json, os\nprint(json.dumps(dict(os.environ)))\n"
    result = await run(script, work_root)
    env = json.loads(result.stdout.head)
    cwd = env["HOME"]
    assert env == {
        "PATH": BASE_PATH,
        "LANG": "C.UTF-8",
        "HOME": cwd,
        "HOOKSHELF_OUTPUT": f"{cwd}/hookshelf-output",
        "HOOKSHELF_EXECUTION_ID": "exec-1",
        "HOOKSHELF_RUN_ID": "run-1",
        "HOOKSHELF_HOOK_TYPE": "PRE",
        "FROM_ORCHESTRATOR": "yes",
        "PARAM": "value",
    }
    assert "must-not-leak" not in result.stdout.head.decode()


async def test_home_from_a_variable_is_kept(work_root: Path) -> None:
    environment = build_environment(system={}, variables={"HOME": "/elsewhere"}, parameters={})
    result = await run('printf %s "$HOME"', work_root, environment=environment)
    assert result.stdout.head == b"/elsewhere"


async def test_fresh_private_working_directory_removed_afterwards(work_root: Path) -> None:
    script = "pwd; stat -c %a .; ls -A; echo data > made-by-hook; mkdir -p d/e; chmod 000 d"
    first = await run(script, work_root)
    second = await run(script, work_root)
    lines = first.stdout.head.decode().splitlines()
    cwd = Path(lines[0])
    assert cwd.parent == work_root
    assert lines[1] == "700"
    assert lines[2:] == ["hookshelf-output"]  # its script lives in a slot beside it
    assert second.stdout.head.decode().splitlines()[0] != str(cwd)
    assert not cwd.exists()
    assert list(work_root.iterdir()) == []


async def test_stdin_is_dev_null(work_root: Path) -> None:
    result = await run("readlink /proc/self/fd/0; cat; echo end", work_root, timeout_seconds=10)
    assert result.stdout.head == b"/dev/null\nend\n"


async def test_own_session(work_root: Path) -> None:
    result = await run("ps -o sid= -o pgid= -o pid= -p $$", work_root)
    sid, pgid, pid = result.stdout.head.split()
    assert sid == pgid == pid
    assert int(sid) != os.getsid(0)


async def test_stdout_and_stderr_are_separate_streams(work_root: Path) -> None:
    collector = Collector()
    result = await run_step(
        spec("echo out; echo err >&2; echo out2"), collector, work_root=work_root
    )
    assert collector.stream(STDOUT) == b"out\nout2\n"
    assert collector.stream(STDERR) == b"err\n"
    assert result.stdout.head == b"out\nout2\n"
    assert result.stderr.head == b"err\n"


async def test_many_lines_make_few_full_chunks(work_root: Path) -> None:
    collector = Collector()
    result = await run_step(spec("seq 1 200000"), collector, work_root=work_root)
    expected = "".join(f"{i}\n" for i in range(1, 200001)).encode()
    assert collector.stream(STDOUT) == expected
    assert all(len(chunk.data) <= CHUNK_LIMIT for chunk in collector.chunks)
    assert len(collector.chunks) <= 3 * (len(expected) // CHUNK_LIMIT + 1)
    offset = 0
    for chunk in collector.chunks:
        assert chunk.offset == offset
        offset += len(chunk.data)
    assert result.stdout.total_bytes == len(expected)
    assert result.stdout.truncated


async def test_slow_lines_are_coalesced_but_still_live(work_root: Path, tmp_path: Path) -> None:
    seen = tmp_path / "seen"

    class Watching(Collector):
        async def __call__(self, chunk: OutputChunk) -> None:
            await super().__call__(chunk)
            seen.touch()

    collector = Watching()
    # After its lines the script waits (a minute at most) for the first chunk to arrive:
    # exit 0 says the output came while it still ran, not at its end.
    script = (
        "for i in $(seq 1 100); do echo line $i; sleep 0.005; done\n"
        f"for i in $(seq 1 600); do [ -e {seen} ] && exit 0; sleep 0.1; done; exit 1\n"
    )
    result = await run_step(spec(script), collector, work_root=work_root)
    assert collector.stream(STDOUT).count(b"\n") == 100
    assert result.exit_code == 0, "no output arrived while the script was running"
    # Coalesced: a chunk goes FLUSH_DELAY after its first byte and the pump reads on only
    # once it is sent, so chunks are at least FLUSH_DELAY apart (the end of the stream is
    # flushed at once): 100 lines over >= 0.5 s make about ten chunks, never 100, however
    # slowly the machine runs the script.
    span = collector.arrivals[-1] - collector.arrivals[0]
    assert len(collector.chunks) <= span / FLUSH_DELAY + 2, (len(collector.chunks), span)
    assert len(collector.chunks) < 100


async def test_head_and_tail_capture(work_root: Path) -> None:
    script = (
        "#!/usr/bin/python3\nimport sys\n"
        f"sys.stdout.buffer.write(b'A' * {HEAD_LIMIT} + b'B' * 300000 + b'C' * {TAIL_LIMIT})\n"
    )
    collector = Collector()
    result = await run_step(spec(script), collector, work_root=work_root)
    assert result.stdout.head == b"A" * HEAD_LIMIT
    assert result.stdout.tail == b"C" * TAIL_LIMIT
    assert result.stdout.total_bytes == HEAD_LIMIT + 300000 + TAIL_LIMIT
    assert result.stdout.truncated
    assert len(collector.stream(STDOUT)) == result.stdout.total_bytes


async def test_secrets_are_redacted_everywhere(work_root: Path) -> None:
    secret = "hunter2-S3cret/+x"
    raw = secret.encode()
    forms = [
        raw,
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        urllib.parse.quote(raw, safe="").encode(),
        urllib.parse.quote_plus(raw).encode(),
        base64.b64encode(b"user:" + raw),  # e.g. an HTTP basic auth header
    ]
    printed = "".join(f"printf '%s\\n' '{form.decode()}'\n" for form in forms)
    # Split across two writes with a pause: two separate reads of the pipe.
    split = f"printf '%s' 'password={secret[:7]}'; sleep 0.3; printf '%s\\n' '{secret[7:]}'\n"
    script = printed + split + f"printf '%s' '{secret}' >&2\n"
    collector = Collector()
    result = await run_step(spec(script, secrets=(secret,)), collector, work_root=work_root)
    streamed = collector.stream(STDOUT) + collector.stream(STDERR)
    captured = result.stdout.head + result.stderr.head
    for output in (streamed, captured):
        assert raw not in output
        for form in forms:
            assert form not in output
        assert b"hunter" not in output
    assert collector.stream(STDOUT).splitlines()[:5] == [b"***"] * 5
    assert b"password=***\n" in collector.stream(STDOUT)
    assert collector.stream(STDERR) == b"***"


async def test_output_variables(work_root: Path) -> None:
    script = (
        'echo "VERSION=1.2.3" >> "$HOOKSHELF_OUTPUT"\n'
        'echo "# a comment" >> "$HOOKSHELF_OUTPUT"\n'
        'echo "HOOKSHELF_RUN_ID=forged" >> "$HOOKSHELF_OUTPUT"\n'
        'echo "CONTAINERS=web db" >> "$HOOKSHELF_OUTPUT"\n'
    )
    result = await run(script, work_root)
    assert result.output_variables == {"VERSION": "1.2.3", "CONTAINERS": "web db"}
    assert len(result.warnings) == 1
    assert "reserved" in result.warnings[0]


async def test_output_file_swapped_for_a_symlink_is_ignored(work_root: Path) -> None:
    result = await run('ln -sf /etc/hostname "$HOOKSHELF_OUTPUT"', work_root)
    assert result.output_variables == {}
    assert "could not be opened" in result.warnings[0]


async def test_output_variables_of_a_failed_step_are_still_read(work_root: Path) -> None:
    result = await run('echo "A=1" > "$HOOKSHELF_OUTPUT"; exit 3', work_root)
    assert result.status == Status.EXECUTION_STATUS_FAILED
    assert result.output_variables == {"A": "1"}


async def test_closing_stdout_early_is_fine(work_root: Path) -> None:
    result = await run("exec >&-; sleep 0.2; echo late >&2", work_root)
    assert result.status == Status.EXECUTION_STATUS_SUCCEEDED
    assert result.stderr.head == b"late\n"


async def test_concurrent_steps(work_root: Path) -> None:
    results = await asyncio.gather(
        *(run(f"sleep 0.2; echo {i}; exit {i % 2}", work_root) for i in range(8))
    )
    for i, result in enumerate(results):
        assert result.stdout.head == f"{i}\n".encode()
        assert result.exit_code == i % 2
    assert list(work_root.iterdir()) == []


async def test_emit_is_never_called_concurrently(work_root: Path) -> None:
    active = 0
    overlaps = 0
    seen: dict[int, bytes] = {STDOUT: b"", STDERR: b""}

    async def emit(chunk: OutputChunk) -> None:
        nonlocal active, overlaps
        active += 1
        overlaps += active > 1
        seen[chunk.stream] += chunk.data
        await asyncio.sleep(0.001)
        active -= 1

    script = "seq 1 100000 & seq 1 100000 >&2; wait"
    await run_step(spec(script), emit, work_root=work_root)
    assert overlaps == 0
    expected = "".join(f"{i}\n" for i in range(1, 100001)).encode()
    assert seen[STDOUT] == seen[STDERR] == expected
