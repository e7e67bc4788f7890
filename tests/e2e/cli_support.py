"""Helpers for the CLI and backup-wrapper end-to-end tests (no tests here).

Real processes, as an operator runs them: `python -m library_service` on SQLite,
`python -m executor_service` on a short unix socket, and the installed `hookshelf`
console script, configured only through HOOKSHELF_* variables.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
HOOKSHELF = Path(sys.executable).with_name("hookshelf")
STARTUP_SECONDS = 60


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKSHELF_", "BORG_"))}
    env.update(PYTHONUNBUFFERED="1", COLUMNS="200", NO_COLOR="1", **extra)
    return env


async def _serving(target: str) -> bool:
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.aio.AioRpcError:
        return False


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    target: str
    log: Path

    def wait_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited early:\n{self.tail()}")
            if asyncio.run(_serving(self.target)):
                return
            time.sleep(0.1)
        pytest.fail(f"{self.name} did not become healthy:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_service(module: str, env: dict[str, str], log: Path, target: str) -> Service:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    service = Service(module, process, target, log)
    service.wait_serving()
    return service


@dataclass
class Stack:
    """Running services and the environment that points the CLI at them."""

    data: Path
    env: dict[str, str]
    services: list[Service] = field(default_factory=list)

    def cli(
        self, *args: str, input: str | None = None, timeout: float = 120, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run `hookshelf ARGS...` to completion."""
        return subprocess.run(
            [str(HOOKSHELF), *args],
            check=False,
            env={**self.env, **env},
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.data,
        )

    def spawn(self, *args: str, **env: str) -> subprocess.Popen[str]:
        """Start `hookshelf ARGS...` in the background (to signal it)."""
        return subprocess.Popen(
            [str(HOOKSHELF), *args],
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.data,
        )

    def logs(self) -> str:
        return "\n".join(f"--- {s.name}\n{s.tail()}" for s in self.services)


@contextmanager
def running_stack(*, executor: bool, **settings: str) -> Iterator[Stack]:
    """The library on SQLite (and the executor on a unix socket) in a fresh directory,
    with more HOOKSHELF_* ``settings`` if given. A short /tmp path: unix socket paths are
    limited to ~107 bytes."""
    data = Path(tempfile.mkdtemp(prefix="hs-cli-", dir="/tmp"))
    library_target = f"127.0.0.1:{free_port()}"
    socket_target = f"unix:{data}/executor.sock"
    env = clean_env(
        HOOKSHELF_DATA_DIR=str(data / "library"),
        HOOKSHELF_LIBRARY_LISTEN=library_target,
        HOOKSHELF_LIBRARY_TARGET=library_target,
        HOOKSHELF_EXECUTOR_LISTEN=socket_target,
        HOOKSHELF_EXECUTOR_TARGET=socket_target,
        HOOKSHELF_EXECUTOR_STATE_DIR=str(data / "executor"),
        HOOKSHELF_LOG_FORMAT="json",
        HOOKSHELF_SHUTDOWN_GRACE_SECONDS="5",
        **settings,
    )
    stack = Stack(data, env)
    try:
        stack.services.append(
            start_service("library_service", env, data / "library.log", library_target)
        )
        if executor:
            stack.services.append(
                start_service("executor_service", env, data / "executor.log", socket_target)
            )
        yield stack
    finally:
        for service in reversed(stack.services):
            service.stop()
        shutil.rmtree(data, ignore_errors=True)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The contract for a bad call: non-zero exit, exactly one line on stderr, no traceback."""
    assert result.returncode != 0, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hookshelf: "), lines
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]
