"""Steps made ready while the step before them runs: content, script and workspace."""

from __future__ import annotations

import os
from pathlib import Path

from executor_service.chains.prepared_steps import PreparedStep
from executor_service.library.content_cache import ContentCache, digest_of
from executor_service.runner.workspace import OUTPUT_FILE_NAME, WorkspacePool
from shared.errors import Unavailable


async def test_a_prepared_step_that_failed_is_tried_again_at_its_turn(tmp_path: Path) -> None:
    """Made ready ahead (prepared_steps.py): a failed fetch is not the step's fate, and
    a preparation that is dropped gives its workspace back."""
    content = b"#!/bin/sh\nexit 0\n"
    answers: list[bytes | Exception] = [Unavailable("library away"), content]

    async def fetch(digest: str) -> bytes:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    cache = ContentCache(tmp_path / "state", fetch)
    pool = WorkspacePool(tmp_path / "work")
    prepared = PreparedStep(cache, pool, 0, "my hook", digest_of(content))
    ready = await prepared.take()
    assert ready.content == content and answers == []
    # Exec'd from the workspace's script slot, named after the script, outside its cwd.
    assert ready.script == ready.workspace.script_slot / "my_hook"
    assert ready.script.read_bytes() == content and os.access(ready.script, os.X_OK)
    assert os.listdir(ready.workspace.directory) == [OUTPUT_FILE_NAME]
    pool.give_back(ready.workspace)

    dropped = PreparedStep(cache, pool, 1, "my hook", digest_of(content))
    await dropped.drop()
    # The one workspace went back to the pool twice, clean: it is all there is.
    assert sorted(entry.name for entry in (tmp_path / "work").iterdir()) == [
        ready.workspace.directory.name,
        ready.workspace.script_slot.name,
    ]


async def test_carried_content_is_held_not_written_and_shared_by_later_chains(
    tmp_path: Path,
) -> None:
    """Content a plan carries is held in memory (library/content_cache.py): no file per script on
    a cold chain, and a second chain that needs it after the first one ran still finds it
    without the library."""
    content = b"#!/bin/sh\nexit 0\n"
    fetched: list[str] = []

    async def fetch(digest: str) -> bytes:
        fetched.append(digest)
        return content

    cache = ContentCache(tmp_path / "state", fetch)
    pool = WorkspacePool(tmp_path / "work")
    digest = digest_of(content)
    assert await cache.fill(digest, content)
    for index in range(2):  # two chains' steps, one after the other
        ready = await PreparedStep(cache, pool, index, "hook", digest).take()
        assert ready.script.read_bytes() == content
        pool.give_back(ready.workspace)
    assert fetched == [] and not (tmp_path / "state" / "cache").exists()
    assert not await cache.fill(digest, b"#!/bin/sh\necho forged\n")  # never held


async def test_a_script_a_hook_edited_or_replaced_is_written_again(tmp_path: Path) -> None:
    """A hook can edit or replace its own file ($0): the next step that gets the
    workspace must still run its own verified bytes, never what the hook left there."""
    genuine, other = b"#!/bin/sh\necho genuine\n", b"#!/bin/sh\necho other\n"
    contents = {digest_of(genuine): genuine, digest_of(other): other}

    async def fetch(digest: str) -> bytes:
        return contents[digest]

    cache = ContentCache(tmp_path / "state", fetch)
    pool = WorkspacePool(tmp_path / "work")
    tampering = [
        lambda script: script.write_bytes(b"#!/bin/sh\necho forged\n"),
        lambda script: script.chmod(0o000),
        lambda script: (script.unlink(), script.write_bytes(b"#!/bin/sh\necho forged\n")),
    ]
    for index, tamper in enumerate(tampering):
        ready = await PreparedStep(cache, pool, index, "hook", digest_of(genuine)).take()
        assert ready.script.read_bytes() == genuine
        tamper(ready.script)
        pool.give_back(ready.workspace)
        for digest, name in ((digest_of(genuine), "hook"), (digest_of(other), "renamed")):
            again = await PreparedStep(cache, pool, index, name, digest).take()
            assert again.script.name == name
            assert again.script.read_bytes() == contents[digest]
            assert os.access(again.script, os.X_OK)
            assert os.listdir(again.workspace.script_slot) == [name]
            pool.give_back(again.workspace)
