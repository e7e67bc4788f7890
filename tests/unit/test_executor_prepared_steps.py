"""Steps made ready while the step before them runs: content, script and workspace."""

from __future__ import annotations

import os
from pathlib import Path

from executor_service.content_cache import ContentCache, digest_of
from executor_service.prepared_steps import PreparedStep
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
    # Exec'd through a link named after the script, to the verified cache file.
    assert ready.script.name == f"my_hook.{digest_of(content)[7:23]}"
    assert ready.script.is_symlink()
    assert ready.script.read_bytes() == content and os.access(ready.script, os.X_OK)
    assert os.listdir(ready.workspace.directory) == [OUTPUT_FILE_NAME]
    pool.give_back(ready.workspace)

    dropped = PreparedStep(cache, pool, 1, "my hook", digest_of(content))
    await dropped.drop()
    # The one workspace went back to the pool twice, clean: it is all there is.
    assert [entry.name for entry in (tmp_path / "work").iterdir()] == [
        ready.workspace.directory.name
    ]


async def test_a_link_replaced_by_a_file_is_made_again(tmp_path: Path) -> None:
    """A hook can replace the link it was run by ($0): the next run must still exec the
    verified cache file, not what the hook left there."""
    content = b"#!/bin/sh\necho genuine\n"

    async def fetch(digest: str) -> bytes:
        return content

    cache = ContentCache(tmp_path / "state", fetch)
    digest = digest_of(content)
    await cache.get(digest)
    link = cache.runnable(digest, "hook")
    link.unlink()
    link.write_bytes(b"#!/bin/sh\necho forged\n")
    again = cache.runnable(digest, "hook")
    assert again == link and link.is_symlink() and link.read_bytes() == content
