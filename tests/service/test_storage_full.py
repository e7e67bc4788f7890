"""A full disk under the library (a small tmpfs; the tests run as root): writes answer
RESOURCE_EXHAUSTED naming the full storage and change nothing, reads keep working,
DeleteScript still works so space can be freed through the API, and once there is room
again everything works."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from library_service.store.storage import RESERVE_NAME, is_storage_full
from shared.error_details import details_of
from shared.settings import Settings
from shared.stubs import library_pb2
from tests.conftest import open_library
from tests.service.assignments_support import DEADLINE
from tests.service.scripts_support import create


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)], check=True)
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


async def _code_and_reason(call) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    found = details_of(raised.value)
    return found.code, found.message, found.reason


def _settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'library.db'}",
        library_listen="127.0.0.1:0",
        log_format="console",
        install_templates=False,
        mirror_scan_seconds=0,
    )


async def test_a_full_disk_refuses_writes_clearly_keeps_reads_and_lets_deletes_free_space(
    small_disk: Path,
) -> None:
    data_dir = small_disk / "data"
    async with open_library(_settings(data_dir)) as library:
        assert (data_dir / RESERVE_NAME).stat().st_size > 0
        kept = await create(library, "kept", "#!/bin/sh\necho kept\n")
        doomed = await create(library, "doomed", "#!/bin/sh\necho " + "x" * 20000 + "\n")
        filler = await asyncio.to_thread(_fill, small_disk)

        # A write: RESOURCE_EXHAUSTED naming the full storage; nothing created.
        code, message, reason = await _code_and_reason(
            library.stub.CreateScript(
                library_pb2.CreateScriptRequest(
                    script=library_pb2.Script(name="new", content="#!/bin/sh\necho " + "y" * 9000)
                ),
                timeout=DEADLINE,
            )
        )
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, message
        assert "storage is full" in message and reason == "STORAGE_FULL"

        # Reads keep working.
        listed = await library.stub.ListScripts(library_pb2.ListScriptsRequest(), timeout=DEADLINE)
        assert sorted(s.name for s in listed.scripts) == ["doomed", "kept"]
        got = await library.stub.GetScript(
            library_pb2.GetScriptRequest(id=kept.id), timeout=DEADLINE
        )
        assert got.script.name == "kept"

        # Deleting still works: space can be freed through the API.
        await library.stub.DeleteScript(
            library_pb2.DeleteScriptRequest(id=doomed.id), timeout=DEADLINE
        )
        listed = await library.stub.ListScripts(library_pb2.ListScriptsRequest(), timeout=DEADLINE)
        assert [s.name for s in listed.scripts] == ["kept"]

        # Room again: writes work as before.
        os.unlink(filler)
        made = await create(library, "after", "#!/bin/sh\necho after\n")
        assert made.name == "after"

    # The next start makes the reserve again.
    async with open_library(_settings(data_dir)):
        assert (data_dir / RESERVE_NAME).stat().st_size > 0


def test_disk_full_is_recognised_from_sqlite_postgresql_and_the_os() -> None:
    import sqlite3

    import asyncpg
    from sqlalchemy.exc import OperationalError

    sqlite_full = sqlite3.OperationalError("database or disk is full")
    assert is_storage_full(OperationalError("INSERT", {}, sqlite_full))
    assert is_storage_full(asyncpg.exceptions.DiskFullError("could not extend file"))
    assert is_storage_full(OSError(28, "No space left on device"))
    assert not is_storage_full(sqlite3.OperationalError("database is locked"))
    assert not is_storage_full(OperationalError("INSERT", {}, Exception("timeout")))
