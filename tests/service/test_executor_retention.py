"""Journal retention on a running executor, and a full state dir.

- A run past the retention is pruned; GetBackupRun then says NOT_FOUND and why.
- A full state dir (a small tmpfs; the tests run as root): BeginBackup is refused with
  RESOURCE_EXHAUSTED before any hook starts, a run already open still runs its post chain,
  the journal stays sound, and once there is room again everything works.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from shared.error_details import details_of
from shared.stubs import executor_pb2, library_pb2
from tests.service.executor_support import POST, PRE, SUCCESS, open_executor, summary_of, unique


async def test_a_pruned_run_is_not_found_and_the_answer_says_why(
    library, tmp_path: Path, short_socket_dir: Path
) -> None:
    executor = await open_executor(
        library, tmp_path, short_socket_dir, executor_journal_retention_seconds=0
    )
    try:
        repo = unique("repo")
        await executor.hook(repo, unique("pre"), PRE)
        run_id = (await executor.begin(repo))[0].run_id
        summary_of(await executor.end(run_id, SUCCESS))
        await executor.delivered()
        assert (await executor.get_run(run_id)).state == executor_pb2.RUN_STATE_ENDED

        assert await executor.app.retention.prune() == 1

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await executor.get_run(run_id)
        found = details_of(raised.value)
        assert found.code == grpc.StatusCode.NOT_FOUND
        assert "pruned after the retention" in found.message
        assert "HOOKSHELF_EXECUTOR_JOURNAL_RETENTION_SECONDS=0" in found.message
        # Its records were delivered before it went: the library has them.
        assert len(await executor.executions(run_id=run_id)) == 1
    finally:
        await executor.channel.close()
        await executor.app.stop(0)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount_point)], check=True
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path) -> Path:
    """Write a file until the disk says ENOSPC, in ever smaller writes."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler


async def test_a_full_state_dir_refuses_new_runs_and_open_runs_still_end(
    library, small_disk: Path, tmp_path: Path, short_socket_dir: Path
) -> None:
    executor = await open_executor(library, small_disk, short_socket_dir)
    executor.marks = tmp_path / "marks.txt"  # the hooks' marks are not on the full disk
    state_dir = small_disk / "state"
    try:
        open_repo, new_repo = unique("open"), unique("new")
        for repo in (open_repo, new_repo):
            await executor.hook(repo, f"pre-{repo}", PRE)
            await executor.hook(repo, f"post-{repo}", POST, custom_run_on=library_pb2.RUN_ON_ALWAYS)
        begun = await executor.begin(open_repo)
        assert summary_of(begun).verdict == executor_pb2.VERDICT_PROCEED
        filler = await asyncio.to_thread(_fill, small_disk)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await executor.begin(new_repo)
        found = details_of(raised.value)
        assert found.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert found.reason == "STATE_DIR_FULL"
        assert str(state_dir) in found.message and "free" in found.message
        assert all(new_repo not in line for line in executor.lines())  # no hook started

        # The run that was open keeps its promise on the full disk.
        ended = summary_of(await executor.end(begun[0].run_id, SUCCESS))
        assert ended.post_chain_ran and ended.succeeded_count == 1
        # It took the reserve: its journal rows found no other room.
        assert not (state_dir / ".space-reserve").exists()
        assert [line.split()[0] for line in executor.lines()] == [
            f"pre-{open_repo}",
            f"post-{open_repo}",
        ]

        # Room again: new runs start as before.
        filler.unlink()
        again = await executor.begin(new_repo)
        assert summary_of(again).verdict == executor_pb2.VERDICT_PROCEED
        summary_of(await executor.end(again[0].run_id, SUCCESS))
        await executor.delivered()
        assert len(await executor.executions(repository_id=new_repo)) == 2
        assert len(await executor.executions(repository_id=open_repo)) == 2
    finally:
        await executor.channel.close()
        await executor.app.stop(0)
    db = sqlite3.connect(state_dir / "journal.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
