"""Getting a step ready while the step before it runs: its verified content and its
fresh working directory (script and ``$HOOKSHELF_OUTPUT`` file written).

Making a working directory is several file-system metadata updates; on a journalling file
system that shares its commits with the executor's own fsyncs they take a few tenths of a
millisecond, as long as a trivial hook's whole run. Done while the previous step's
process runs (the preparation is a task: it runs when the chain waits for that
process), they leave the chain's path. Nothing about the step is decided or journaled
here: whether it runs is still decided when its turn comes, and a preparation
that is not used (the chain stopped, or was cancelled) is removed when it completes. A
directory left by an executor killed meanwhile is removed at the next start-up, with
the other workspaces (leftovers.py).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from executor_service.content_cache import ContentCache
from executor_service.runner.workspace import Workspace, create_workspace


class PreparedStep:
    """A step's execution id, and its content and workspace on their way."""

    def __init__(
        self, cache: ContentCache, work_root: Path, step_index: int, script_name: str,
        digest: str,
    ) -> None:
        self.step_index = step_index
        self.execution_id = str(uuid.uuid4())
        self._cache, self._work_root = cache, work_root
        self._script_name, self._digest = script_name, digest
        self._task = asyncio.create_task(self._prepare())

    async def _prepare(self) -> tuple[bytes, Workspace]:
        content = await self._cache.get(self._digest)  # verified; may fetch, may raise
        # In the loop's thread, not a worker's: the loop is mostly waiting for the previous
        # step's process by now, and a thread hop per step cost more CPU than the
        # file-system calls themselves (measured: ~2 ms of worker CPU per step).
        workspace = create_workspace(
            self._work_root, self.execution_id, self._script_name, content
        )
        return content, workspace

    async def take(self) -> tuple[bytes, Workspace]:
        """The content and the workspace, which the caller now owns (and removes).

        A preparation that failed (the content could not be had from the library, say)
        is tried again now, the step's turn: the step sees the library as it is when it
        runs, as it would without preparation. Raises what that raises."""
        try:
            return await asyncio.shield(self._task)
        except asyncio.CancelledError:
            self.discard()  # the caller is gone: nobody will use what it makes
            raise
        except Exception:  # noqa: BLE001 - tried again, which raises it if it persists
            return await self._prepare()

    async def drop(self) -> None:
        """Not used after all: wait for the preparation to end and remove what it made."""
        try:
            await asyncio.wait([self._task])  # never raises what the task raised
        except BaseException:
            self.discard()  # cancelled: it goes when the preparation ends
            raise
        _remove_workspace(self._task)

    def discard(self) -> None:
        """Not used after all: its workspace goes as soon as it exists."""
        self._task.add_done_callback(_remove_workspace)


def _remove_workspace(task: asyncio.Task[tuple[bytes, Workspace]]) -> None:
    if task.cancelled() or task.exception() is not None:
        return
    _, workspace = task.result()
    workspace.remove()
