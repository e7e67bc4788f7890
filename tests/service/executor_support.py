"""Helpers for the executor's service and e2e tests (no tests here).

A real library (the ``library`` fixture: SQLite or PostgreSQL) and a real executor on a
short unix socket, talking through the generated stubs. Hooks prove they ran by appending
a line to a file the test reads (``$MARKS``), not only by the events.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from executor_service.app import ExecutorApp, ExecutorOptions, start_executor
from executor_service.clock import Clock
from shared.settings import Settings
from shared.stubs import executor_pb2, executor_pb2_grpc, library_pb2
from tests.patience import PATIENCE
from tests.service.assignments_support import DEADLINE, POST, PRE, make_script

__all__ = ["DEADLINE", "POST", "PRE", "ExecutorHandle"]

SUCCESS = library_pb2.BACKUP_OUTCOME_SUCCESS
FAILURE = library_pb2.BACKUP_OUTCOME_FAILURE

# A hook that says it ran: "<script name> <backup status or pre>" to $MARKS.
MARK = 'echo "$HOOKSHELF_SCRIPT_NAME ${HOOKSHELF_BACKUP_STATUS:-pre}" >> "$MARKS"\n'


def mark_script(extra: str = "", *, before: str = "") -> str:
    return f"#!/bin/bash\n{before}{MARK}{extra}"


def executor_settings(library_address: str, state_dir: Path, socket_dir: Path, **more) -> Settings:
    values: dict[str, object] = {
        "executor_listen": f"unix:{socket_dir / 'ex.sock'}",
        "executor_state_dir": state_dir,
        "library_target": library_address,
        "log_format": "console",
        "shutdown_grace_seconds": 2,
    }
    return Settings(**{**values, **more})  # type: ignore[arg-type]


@dataclass
class ExecutorHandle:
    """A real executor, its stub, the library it uses and the file hooks mark."""

    app: ExecutorApp
    channel: grpc.aio.Channel
    stub: executor_pb2_grpc.HookExecutorServiceStub
    library: object  # tests.conftest.LibraryHandle
    marks: Path
    settings: Settings
    options: ExecutorOptions
    extra: dict = field(default_factory=dict)

    @property
    def clock(self) -> Clock:
        return self.app.clock

    def lines(self) -> list[str]:
        """What the hooks wrote, in order."""
        if not self.marks.exists():
            return []
        return self.marks.read_text().splitlines()

    async def script(self, name: str, content: str, **fields) -> str:
        made = await make_script(self.library, name, content=content, **fields)
        return made.id

    async def assign(
        self, repository_id: str, script_id: str, hook_type: int, order: int = 0, **fields
    ) -> None:
        await self.library.stub.AssignScript(
            library_pb2.AssignScriptRequest(
                assignment=library_pb2.Assignment(
                    repository_id=repository_id,
                    script_id=script_id,
                    hook_type=hook_type,
                    execution_order=order,
                    enabled=True,
                    **fields,
                )
            ),
            timeout=DEADLINE,
        )

    async def hook(
        self,
        repository_id: str,
        name: str,
        hook_type: int,
        *,
        order: int = 0,
        content: str | None = None,
        **assignment,
    ) -> str:
        """Make a marking script and assign it."""
        script_id = await self.script(name, content or mark_script())
        await self.assign(repository_id, script_id, hook_type, order, **assignment)
        return script_id

    def variables(self, **more: str) -> dict[str, str]:
        return {"MARKS": str(self.marks), **more}

    async def begin(self, repository_id: str, **request) -> list[executor_pb2.HookEvent]:
        request.setdefault("variables", self.variables())
        call = self.stub.BeginBackup(
            executor_pb2.BeginBackupRequest(repository_id=repository_id, **request),
            timeout=60,
        )
        return [response.event async for response in call]

    async def end(
        self, run_id: str, outcome: int = SUCCESS, **request
    ) -> list[executor_pb2.HookEvent]:
        call = self.stub.EndBackup(
            executor_pb2.EndBackupRequest(run_id=run_id, outcome=outcome, **request), timeout=60
        )
        return [response.event async for response in call]

    async def get_run(self, run_id: str) -> executor_pb2.BackupRun:
        response = await self.stub.GetBackupRun(
            executor_pb2.GetBackupRunRequest(run_id=run_id), timeout=DEADLINE
        )
        return response.run

    async def wait_ended(self, run_id: str, timeout: float = PATIENCE) -> executor_pb2.BackupRun:
        async with asyncio.timeout(timeout):
            while True:
                run = await self.get_run(run_id)
                if run.state == executor_pb2.RUN_STATE_ENDED:
                    return run
                await asyncio.sleep(0.05)

    async def executions(self, **filters) -> list[library_pb2.Execution]:
        response = await self.library.stub.ListExecutions(
            library_pb2.ListExecutionsRequest(page_size=1000, **filters), timeout=DEADLINE
        )
        return list(response.executions)

    async def delivered(self, timeout: float = PATIENCE) -> None:
        """Every record of this executor reached the library."""
        assert await self.app.recorder.drained(timeout), "records still waiting"


def summary_of(events: list[executor_pb2.HookEvent]) -> executor_pb2.SummaryEvent:
    """The summary, checking the stream's shape: numbered 1..n, one summary, last."""
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds.count("summary") == 1 and kinds[-1] == "summary", kinds
    assert len({e.run_id for e in events}) == 1
    return events[-1].summary


def kinds_of(events: list[executor_pb2.HookEvent]) -> list[str]:
    return [e.WhichOneof("event") for e in events]


async def open_executor(
    library, tmp_path: Path, socket_dir: Path, *, options: ExecutorOptions | None = None, **settings
) -> ExecutorHandle:
    options = options or ExecutorOptions(lease_check_interval=0.1, recorder_max_backoff=0.5)
    config = executor_settings(library.address, tmp_path / "state", socket_dir, **settings)
    app = await start_executor(config, options)
    channel = grpc.aio.insecure_channel(app.address)
    return ExecutorHandle(
        app=app,
        channel=channel,
        stub=executor_pb2_grpc.HookExecutorServiceStub(channel),
        library=library,
        marks=tmp_path / "marks.txt",
        settings=config,
        options=options,
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def workspaces_left(state_dir: Path) -> list[list[str]]:
    """What each workspace under the state dir holds besides an empty output file (and,
    in its script slot, one script): a list of empty lists when every step left its
    workspace clean (kept for reuse)."""
    found = []
    for directory in sorted((state_dir / "work").iterdir()):
        if directory.name.endswith(".hook"):
            continue  # a script slot: looked at with its workspace
        output = directory / "hookshelf-output"
        extra = sorted(p.name for p in directory.iterdir() if p.name != "hookshelf-output")
        if not output.is_file() or output.stat().st_size:
            extra.append("hookshelf-output (not an empty file)")
        slot = directory.with_name(directory.name + ".hook")
        scripts = list(slot.iterdir()) if slot.is_dir() else []
        if len(scripts) > 1 or not all(p.is_file() for p in scripts):
            extra.append(f"script slot {sorted(p.name for p in scripts)}")
        found.append(extra)
    return found
