"""Steps made ready while the step before them runs: content and workspace."""

from __future__ import annotations

from pathlib import Path

from executor_service.content_cache import ContentCache, digest_of
from executor_service.prepared_steps import PreparedStep
from shared.errors import Unavailable


async def test_a_prepared_step_that_failed_is_tried_again_at_its_turn(tmp_path: Path) -> None:
    """Made ready ahead (prepared_steps.py): a failed fetch is not the step's fate, and
    a preparation that is dropped leaves no workspace."""
    content = b"#!/bin/sh\nexit 0\n"
    answers: list[bytes | Exception] = [Unavailable("library away"), content]

    async def fetch(digest: str) -> bytes:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    cache = ContentCache(tmp_path / "state", fetch)
    work = tmp_path / "work"
    prepared = PreparedStep(cache, work, 0, "hook", digest_of(content))
    got, workspace = await prepared.take()
    assert got == content and answers == []
    assert workspace.script.read_bytes() == content and workspace.output_file.exists()
    workspace.remove()

    dropped = PreparedStep(cache, work, 1, "hook", digest_of(content))
    await dropped.drop()
    assert list(work.iterdir()) == []
