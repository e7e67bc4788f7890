"""The file mirror, checked on disk: <data_dir>/scripts/library/<slug>.sh, mode 0755,
written atomically, renamed and removed with its script, and edits made to it outside the
service imported as versions (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from library_service.app import start_library
from library_service.domain.mirror import EXTERNAL_EDIT_AUTHOR, mirror_root
from shared.settings import Settings
from shared.stubs import library_pb2, library_pb2_grpc
from tests.conftest import LibraryHandle
from tests.patience import PATIENCE
from tests.service.assignments_support import DEADLINE, rejected
from tests.service.scripts_support import (
    create,
    get,
    update,
    update_call,
    versions,
)


@asynccontextmanager
async def _running(settings: Settings, **options) -> AsyncIterator[LibraryHandle]:
    app = await start_library(settings, **options)
    channel = grpc.aio.insecure_channel(app.address)
    try:
        yield LibraryHandle(app, channel, library_pb2_grpc.ScriptLibraryServiceStub(channel))
    finally:
        await channel.close()
        await app.stop(0)


def _root(library) -> Path:
    return mirror_root(library.data_dir)


def _files(library) -> set[str]:
    return {entry.name for entry in _root(library).iterdir()}


async def _eventually(check, timeout: float = PATIENCE) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.05)


async def test_a_new_script_is_an_executable_file_with_its_content(library) -> None:
    made = await create(library, "Stop Docker", "#!/bin/sh\necho 'stop ✓'\n")

    path = _root(library) / "stop-docker.sh"
    assert made.file_path == str(path)
    assert path.read_text(encoding="utf-8") == made.content
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert _files(library) == {"stop-docker.sh"}  # no temp file left behind


async def test_file_names_are_made_by_the_server_only(library, tmp_path: Path) -> None:
    hostile = await create(library, "../../../etc/passwd")
    same_slug = await create(library, "Stop Docker")
    other = await create(library, "stop-docker")
    nothing_left = await create(library, "中文")

    assert _files(library) == {"etc-passwd.sh", "stop-docker.sh", "stop-docker-2.sh", "script.sh"}
    assert Path(hostile.file_path).parent == _root(library)
    assert same_slug.file_path.endswith("/stop-docker.sh")
    assert other.file_path.endswith("/stop-docker-2.sh")
    assert nothing_left.file_path.endswith("/script.sh")
    assert not (tmp_path / "etc").exists()


async def test_new_content_rewrites_the_file(library) -> None:
    made = await create(library, "backup", "echo one\n")

    await update(library, made.id, ["content"], content="echo two\n")

    assert (_root(library) / "backup.sh").read_text() == "echo two\n"


async def test_the_file_follows_a_rename(library) -> None:
    made = await create(library, "old name", "echo hi\n")

    await update(library, made.id, ["name"], name="New Name")
    assert _files(library) == {"new-name.sh"}
    assert (_root(library) / "new-name.sh").read_text() == "echo hi\n"

    renamed = await update(library, made.id, ["name"], name="new-name")  # slugs alike
    assert _files(library) == {"new-name.sh"}
    assert renamed.file_path.endswith("/new-name.sh")


async def test_the_file_goes_with_the_script(library) -> None:
    made = await create(library, "short lived")
    kept = await create(library, "kept")

    await library.stub.DeleteScript(library_pb2.DeleteScriptRequest(id=made.id), timeout=DEADLINE)

    assert _files(library) == {Path(kept.file_path).name}


async def test_an_edit_of_the_file_becomes_a_version_on_read(library) -> None:
    made = await create(library, "edited", "echo one\n")
    path = Path(made.file_path)

    path.write_text("echo edited by hand ${WHO:-me}\n")
    found = (await get(library, made.id)).script

    assert found.content == "echo edited by hand ${WHO:-me}\n"
    assert found.version_count == 2
    assert found.etag != made.etag
    assert [p.name for p in found.parameters] == ["WHO"]
    newest = (await versions(library, made.id))[0]
    assert (newest.number, newest.author, newest.digest) == (2, EXTERNAL_EDIT_AUTHOR, found.digest)
    # Reading again imports nothing more.
    assert (await get(library, made.id)).script.version_count == 2


async def test_an_edit_makes_an_etag_read_before_it_stale(library) -> None:
    made = await create(library, "edited")
    Path(made.file_path).write_text("echo edited\n")

    found = await rejected(
        update_call(library, made.id, ["description"], description="x", etag=made.etag)
    )

    assert found.code == grpc.StatusCode.ABORTED
    assert (await get(library, made.id)).script.content == "echo edited\n"


async def test_the_background_scan_imports_edits_without_a_read(library_settings) -> None:
    async with _running(library_settings, mirror_scan_seconds=0.05) as library:
        made = await create(library, "scanned", "echo one\n")

        Path(made.file_path).write_text("echo two\n")

        async def imported() -> bool:
            listed = await versions(library, made.id)
            return len(listed) == 2 and listed[0].author == EXTERNAL_EDIT_AUTHOR

        await _eventually(imported)


async def test_an_edit_the_api_would_refuse_is_left_alone(library) -> None:
    made = await create(library, "refused", "echo one\n")
    path = Path(made.file_path)

    path.write_bytes(b"echo \x00 binary \xff\n")
    found = (await get(library, made.id)).script

    assert found.content == "echo one\n" and found.version_count == 1
    assert path.read_bytes() == b"echo \x00 binary \xff\n"  # not clobbered either

    # A change through the API wins and rewrites the file.
    await update(library, made.id, ["content"], content="echo three\n")
    assert path.read_text() == "echo three\n"


async def test_a_symlink_is_not_followed_but_replaced(library, tmp_path: Path) -> None:
    made = await create(library, "linked", "echo mine\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    path = Path(made.file_path)
    path.unlink()
    path.symlink_to(secret)

    found = (await get(library, made.id)).script

    assert found.content == "echo mine\n" and found.version_count == 1
    assert not path.is_symlink() and path.read_text() == "echo mine\n"
    assert secret.read_text() == "password=hunter2\n"


async def test_a_huge_file_is_not_read_whole_nor_imported(library) -> None:
    made = await create(library, "huge", "echo small\n")
    path = Path(made.file_path)
    os.truncate(path, 64 * 1024 * 1024)  # sparse: no disk needed

    found = (await get(library, made.id)).script

    assert found.content == "echo small\n" and found.version_count == 1


async def test_a_failed_write_leaves_the_old_file_whole(library, monkeypatch) -> None:
    made = await create(library, "atomic", "echo old\n")
    path = Path(made.file_path)

    def no_fsync(fd: int) -> None:
        raise OSError(5, "simulated I/O error")

    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", no_fsync)
        changed = await update(library, made.id, ["content"], content="echo new\n" * 1000)
        # The database is the record: the change stands, the mirror lags behind.
        assert changed.content == "echo new\n" * 1000
        assert path.read_text() == "echo old\n"
        assert _files(library) == {"atomic.sh"}  # the temp file was cleaned up
        assert stat.S_IMODE(path.stat().st_mode) == 0o755

    # Once writes work again the mirror catches up (and the lag is not an "edit").
    await library.app.context.mirror.scan()
    assert path.read_text() == "echo new\n" * 1000
    assert (await get(library, made.id)).script.version_count == 2


async def test_a_chmod_is_repaired_not_imported(library) -> None:
    made = await create(library, "modes")
    path = Path(made.file_path)

    path.chmod(0o644)
    await library.app.context.mirror.scan()

    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert (await get(library, made.id)).script.version_count == 1


async def test_start_up_resyncs_the_mirror(library_settings) -> None:
    async with _running(library_settings, mirror_scan_seconds=0) as library:
        missing = await create(library, "missing", "echo missing\n")
        stale = await create(library, "stale", "echo v1\n")
        await update(library, stale.id, ["content"], content="echo v2\n")
        edited = await create(library, "edited", "echo before\n")
        root = _root(library)

    # While the service is down: a file deleted, one reset to an older version, one
    # edited, and a temp file left by a crash.
    Path(missing.file_path).unlink()
    Path(stale.file_path).write_text("echo v1\n")
    Path(edited.file_path).write_text("echo during downtime\n")
    (root / ".stale.sh.abc123.tmp").write_text("partial")

    async with _running(library_settings, mirror_scan_seconds=0) as library:
        assert Path(missing.file_path).read_text() == "echo missing\n"
        assert Path(stale.file_path).read_text() == "echo v2\n"
        assert (await get(library, stale.id)).script.version_count == 2
        found = (await get(library, edited.id)).script
        assert found.content == "echo during downtime\n"
        assert (await versions(library, edited.id))[0].author == EXTERNAL_EDIT_AUTHOR
        assert _files(library) == {"missing.sh", "stale.sh", "edited.sh"}


async def test_a_replica_without_the_mirror_writes_no_files(library_settings) -> None:
    async with _running(library_settings, mirror_enabled=False) as library:
        made = await create(library, "no mirror")

        assert made.file_path.endswith("/scripts/library/no-mirror.sh")
        assert not Path(made.file_path).exists()
        assert library.app.context.mirror is None


@pytest.mark.parametrize("selector", ["id", "name"])
async def test_get_by_either_selector_sees_the_edit(library, selector: str) -> None:
    made = await create(library, "selected", "echo one\n")
    Path(made.file_path).write_text("echo two\n")

    request = library_pb2.GetScriptRequest(**{selector: getattr(made, selector)})
    found = await library.stub.GetScript(request, timeout=DEADLINE)

    assert found.script.content == "echo two\n"


async def test_an_edit_of_a_template_file_is_put_back_not_imported(library_settings) -> None:
    settings = library_settings.model_copy(update={"install_templates": True})
    async with _running(settings, mirror_scan_seconds=0) as library:
        by_name = library_pb2.GetScriptRequest(name="template:docker-stop")
        template = (await library.stub.GetScript(by_name, timeout=DEADLINE)).script
        path = Path(template.file_path)

        path.write_text("#!/bin/sh\necho my own edit\n")
        found = (await library.stub.GetScript(by_name, timeout=DEADLINE)).script

        assert (found.content, found.version_count) == (template.content, template.version_count)
        assert path.read_text() == template.content
        assert stat.S_IMODE(path.stat().st_mode) == 0o755
