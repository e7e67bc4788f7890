"""The executor as a real process (`python -m executor_service`) — helpers, no tests.

Started on a short unix socket with a state dir of its own, against the in-process
library of the ``library`` fixture. ``kill()`` is SIGKILL: nothing runs on the way out.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import BinaryIO

import grpc

from shared.stubs import executor_pb2, executor_pb2_grpc
from tests.patience import PATIENCE

REPO_ROOT = Path(__file__).resolve().parents[2]


class ExecutorProcess:
    def __init__(
        self,
        *,
        library_address: str,
        state_dir: Path,
        socket_dir: Path,
        grace: float = 2.0,
        log_path: Path | None = None,
        python: str = sys.executable,
        cwd: Path = REPO_ROOT,
        user: str | None = None,
    ) -> None:
        # python, cwd, user: how to run it as another user (test_hook_isolation.py).
        self.python, self.cwd, self.user = python, cwd, user
        self.socket = socket_dir / "ex.sock"
        self.target = f"unix:{self.socket}"
        self.log_path = log_path or state_dir.parent / "executor.log"
        self.environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOOKSHELF_EXECUTOR_LISTEN": self.target,
            "HOOKSHELF_EXECUTOR_STATE_DIR": str(state_dir),
            "HOOKSHELF_LIBRARY_TARGET": library_address,
            "HOOKSHELF_SHUTDOWN_GRACE_SECONDS": str(grace),
            "HOOKSHELF_LOG_FORMAT": "console",
            # Something a hook must never see (the environment-leak check).
            "HOOKSHELF_AUTH_TOKEN": "",
            "EXECUTOR_PRIVATE_SECRET": "must-not-leak",
        }
        self.process: asyncio.subprocess.Process | None = None
        self.channel: grpc.aio.Channel | None = None
        self.stub: executor_pb2_grpc.HookExecutorServiceStub | None = None

    async def start(self, timeout: float = PATIENCE) -> None:
        log = self._open_log()
        try:
            self.process = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                "executor_service",
                cwd=self.cwd,
                env=self.environment,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                user=self.user,
            )
        finally:
            log.close()
        self.channel = grpc.aio.insecure_channel(self.target)
        self.stub = executor_pb2_grpc.HookExecutorServiceStub(self.channel)
        async with asyncio.timeout(timeout):
            while True:
                if self.process.returncode is not None:
                    raise RuntimeError(f"executor exited: {self.log_path.read_text()[-3000:]}")
                try:
                    await self.stub.GetBackupRun(
                        executor_pb2.GetBackupRunRequest(run_id="probe"), timeout=1
                    )
                except grpc.aio.AioRpcError as error:
                    if error.code() == grpc.StatusCode.NOT_FOUND:
                        return
                await asyncio.sleep(0.1)

    def _open_log(self) -> BinaryIO:
        """Opened outside the event loop's hot path; closed once the child has it."""
        return open(self.log_path, "ab")

    async def kill(self) -> None:
        """SIGKILL: no drain, no clean-up, the journal is all that is left."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        await self.close_channel()

    async def terminate(self, timeout: float = PATIENCE) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
        await self.close_channel()
        return code

    async def close_channel(self) -> None:
        if self.channel is not None:
            await self.channel.close()
            self.channel = None

    async def stop_if_running(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
        await self.close_channel()
