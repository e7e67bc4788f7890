"""Hooks a previous executor process left running when it was killed (SIGKILL, OOM).

Its children lived in sessions of their own, so they outlived it. Before the journal's
promises are honoured — which may run the interrupted post step again — the successor
ends them: every process whose environment carries ``HOOKSHELF_OUTPUT=<our work
root>/...`` is a step of this state dir (one executor owns a state dir: journal.py's
lock), wherever it was re-parented. SIGTERM, a grace, SIGKILL, pid-safe (pidfd checked
against the start time); then the dead steps' workspaces are removed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path

import structlog

from executor_service.runner.process_table import (
    ProcessInfo,
    ProcessTable,
    read_environ,
    read_process,
    send_signal,
)

log = structlog.get_logger("hookshelf.executor.leftovers")

GRACE_SECONDS = 3.0


def _leftovers(work_root: Path) -> list[ProcessInfo]:
    marker = b"\0HOOKSHELF_OUTPUT=" + str(work_root).encode() + b"/"
    own = os.getpid()
    return [
        info
        for info in ProcessTable.scan().processes.values()
        if info.pid != own and not info.zombie and marker in b"\0" + read_environ(info.pid)
    ]


def _alive(info: ProcessInfo) -> bool:
    now = read_process(info.pid)
    return now is not None and now.start_time == info.start_time and not now.zombie


async def end_leftovers(work_root: Path, grace: float = GRACE_SECONDS) -> int:
    """End what a predecessor left running under ``work_root`` (absolute); returns how
    many processes were found."""
    found = _leftovers(work_root)
    for info in found:
        send_signal(info.pid, info.start_time, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while any(_alive(info) for info in found) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    for info in found:
        if _alive(info):
            send_signal(info.pid, info.start_time, signal.SIGKILL)
    if found:
        log.warning("leftovers.ended", processes=len(found), pids=[i.pid for i in found])
    if work_root.is_dir():
        for entry in work_root.iterdir():
            shutil.rmtree(entry, ignore_errors=True)
    return len(found)
