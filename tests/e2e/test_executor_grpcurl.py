"""grpcurl against a real executor process over a unix socket: reflection and calls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.e2e.test_executor_process import REPO_ROOT, ExecutorProcess
from tests.patience import PATIENCE
from tests.service.executor_support import unique

GRPCURL = REPO_ROOT / ".venv" / "bin" / "grpcurl"
SERVICE = "hookshelf.executor.v1.HookExecutorService"


@pytest.fixture
def database_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"


async def _grpcurl(socket: Path, *args: str, data: str | None = None) -> tuple[int, str, str]:
    """``grpcurl -plaintext -unix [-d data] <socket> args...``"""
    flags = ["-d", data] if data is not None else []
    process = await asyncio.create_subprocess_exec(
        str(GRPCURL),
        "-plaintext",
        "-unix",
        *flags,
        str(socket),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(PATIENCE):
        out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


async def test_grpcurl_lists_and_calls_over_a_unix_socket(
    library, tmp_path: Path, short_socket_dir: Path
) -> None:
    executor = ExecutorProcess(
        library_address=library.address, state_dir=tmp_path / "state", socket_dir=short_socket_dir
    )
    await executor.start()
    try:
        code, out, err = await _grpcurl(executor.socket, "list")
        assert code == 0, err
        assert SERVICE in out.split() and "grpc.health.v1.Health" in out.split()

        code, out, err = await _grpcurl(executor.socket, "describe", SERVICE)
        assert code == 0, err
        assert "rpc BeginBackup" in out

        # A streaming call: a repository without hooks proceeds straight away.
        request = json.dumps({"repository_id": unique("repo"), "lease_seconds": 120})
        code, out, err = await _grpcurl(executor.socket, f"{SERVICE}/BeginBackup", data=request)
        assert code == 0, err
        events = [
            json.loads(chunk)["event"] for chunk in out.replace("}\n{", "}\x00{").split("\x00")
        ]
        assert [list(set(e) & {"plan", "summary"}) for e in events] == [["plan"], ["summary"]]
        assert events[-1]["summary"]["verdict"] == "VERDICT_PROCEED"

        # An error carries its code.
        code, out, err = await _grpcurl(
            executor.socket, f"{SERVICE}/GetBackupRun", data='{"run_id": "nope"}'
        )
        assert code != 0 and "NotFound" in err
    finally:
        await executor.stop_if_running()
