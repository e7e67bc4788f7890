"""Library outage benchmark (issue 12 §1–2). Not a test: it prints figures and a target.

Real processes as an operator runs them: `python -m library_service` on SQLite, `python -m
executor_service` on a unix socket, and the `hookshelf` CLI. Each round:

1. a repository gets one pre and one post hook; `hookshelf backup -r REPO -- true` runs
   once with the library up (the executor keeps the plans);
2. the library is SIGKILLed; `hookshelf backup` runs again: the kept plans run (the
   backup's wall time is printed beside the first one's) and two records wait in the
   executor's journal;
3. the library stays away for OUTAGE seconds (10 by default): the executor's recorder
   backs off meanwhile (0.5, 1, 2, 4, 8 s, ... up to 30 s), as it would in a real outage;
4. the library starts again on the same data and port. From the moment it answers health
   SERVING, the time until it holds all four records of the round is the figure.

Target: records present ≤ 3 s after the library answers SERVING (before issue 12 they
waited out the back-off: 17–20 s after a 20 s outage). The median of the rounds is the
figure; every round is printed, with the load average.

    python bench/executor/bench_outage.py [--rounds 5] [--outage 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.client import LibraryClient
from shared.client.errors import HookshelfCallError
from shared.stubs import library_pb2 as pb

HOOKSHELF = Path(sys.executable).with_name("hookshelf")
TARGET_SECONDS = 3.0
HOOK = '#!/bin/sh\necho "{name}" >> "${{MARKER}}"\n'


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load() -> str:
    return " ".join(f"{figure:.2f}" for figure in os.getloadavg())


async def serving(target: str) -> bool:
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.aio.AioRpcError:
        return False


class Stack:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.library_target = f"127.0.0.1:{free_port()}"
        socket_target = f"unix:{work}/executor.sock"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSHELF_")}
        self.env.update(
            HOOKSHELF_DATA_DIR=str(work / "library"),
            HOOKSHELF_LIBRARY_LISTEN=self.library_target,
            HOOKSHELF_LIBRARY_TARGET=self.library_target,
            HOOKSHELF_EXECUTOR_LISTEN=socket_target,
            HOOKSHELF_EXECUTOR_TARGET=socket_target,
            HOOKSHELF_EXECUTOR_STATE_DIR=str(work / "executor"),
            HOOKSHELF_LOG_FORMAT="json",
            NO_COLOR="1",
        )
        self.socket_target = socket_target
        self.library: subprocess.Popen[bytes] | None = None
        self.executor: subprocess.Popen[bytes] | None = None

    def _spawn(self, module: str, log: str) -> subprocess.Popen[bytes]:
        with (self.work / log).open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", module],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def start_library(self) -> float:
        """Start the library; returns the moment it first answered SERVING."""
        self.library = self._spawn("library_service", "library.log")
        while not await serving(self.library_target):
            if self.library.poll() is not None:
                raise SystemExit(f"the library exited; see {self.work}/library.log")
            await asyncio.sleep(0.02)
        return time.monotonic()

    async def start_executor(self) -> None:
        self.executor = self._spawn("executor_service", "executor.log")
        while not await serving(self.socket_target):
            if self.executor.poll() is not None:
                raise SystemExit(f"the executor exited; see {self.work}/executor.log")
            await asyncio.sleep(0.05)

    def kill_library(self) -> None:
        assert self.library is not None
        self.library.kill()
        self.library.wait()

    def stop(self) -> None:
        for process in (self.executor, self.library):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)

    def backup(self, repository: str) -> float:
        started = time.monotonic()
        result = subprocess.run(
            [str(HOOKSHELF), "backup", "-r", repository, "--", "true"],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"backup failed ({result.returncode}): {result.stderr}")
        return time.monotonic() - started

    async def hooked_repository(self) -> str:
        repository = f"repo-{uuid.uuid4().hex[:8]}"
        marker = self.work / f"{repository}.marker"
        async with LibraryClient(self.library_target) as library:
            for name, hook_type in (
                ("pre", pb.HOOK_TYPE_PRE_BACKUP),
                ("post", pb.HOOK_TYPE_POST_BACKUP),
            ):
                made = await library.create_script(
                    pb.CreateScriptRequest(
                        script=pb.Script(
                            name=f"{repository}-{name}", content=HOOK.format(name=name)
                        )
                    )
                )
                await library.assign_script(
                    pb.AssignScriptRequest(
                        assignment=pb.Assignment(
                            repository_id=repository,
                            script_id=made.script.id,
                            hook_type=hook_type,
                            enabled=True,
                            parameter_values={"MARKER": str(marker)},
                        )
                    )
                )
        return repository

    async def records(self, repository: str) -> int:
        try:
            async with LibraryClient(self.library_target) as library:
                page = await library.list_executions(
                    pb.ListExecutionsRequest(repository_id=repository, page_size=100)
                )
        except HookshelfCallError:  # not answering yet
            return 0
        return len(page.executions)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the library is away")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hs-outage-", dir="/tmp"))
    stack = Stack(work)
    figures: list[float] = []
    print(f"library outage, {args.rounds} rounds of {args.outage:g} s; load {load()}")
    print(f"{'round':>5}  {'backup up':>9}  {'backup kept':>11}  {'records after SERVING':>21}")
    try:
        await stack.start_library()
        await stack.start_executor()
        for round_number in range(1, args.rounds + 1):
            repository = await stack.hooked_repository()
            up = stack.backup(repository)
            stack.kill_library()
            kept = stack.backup(repository)
            await asyncio.sleep(args.outage)
            back = await stack.start_library()
            while await stack.records(repository) < 4:
                await asyncio.sleep(0.02)
            drained = time.monotonic() - back
            figures.append(drained)
            print(
                f"{round_number:>5}  {up * 1000:>7.0f}ms  {kept * 1000:>9.0f}ms  {drained:>20.2f}s"
            )
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
    median = statistics.median(figures)
    verdict = "met" if median <= TARGET_SECONDS else "NOT met"
    print(
        f"records after SERVING: median {median:.2f} s (min {min(figures):.2f}, max "
        f"{max(figures):.2f}); target <= {TARGET_SECONDS:g} s: {verdict}; load {load()}"
    )


if __name__ == "__main__":
    asyncio.run(main())
