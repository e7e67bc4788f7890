"""Getting a step ready while the step before it runs: its verified content, a fresh
working directory and its script written into that workspace's script slot.

That may mean fetching the content (library/content_cache.py), making a new workspace when the
pool has none, and always writing the script (workspace.py): file-system work of up to a
few tenths of a millisecond, as long as a trivial hook's whole run. Done while the
previous step's process runs (the preparation is a task: it runs when the chain waits for
that process), it leaves the chain's path. Nothing about the step is
decided or journaled here: whether it runs is still decided when its turn comes, and the
workspace of a preparation that is not used (the chain stopped, or was cancelled) goes
back to the pool when it completes. Workspaces left by an executor killed meanwhile are
removed at the next start-up (runner/leftovers.py).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path

from executor_service.library.content_cache import ContentCache
from executor_service.runner.workspace import Workspace, WorkspacePool


@dataclass(frozen=True)
class ReadyStep:
    content: bytes  # verified against the step's digest
    script: Path  # to exec: holds exactly ``content``, in the workspace's script slot
    workspace: Workspace  # fresh, to give back to the pool when the step is over


class PreparedStep:
    """A step's execution id, and its content, script and workspace on their way."""

    def __init__(
        self,
        cache: ContentCache,
        pool: WorkspacePool,
        step_index: int,
        script_name: str,
        digest: str,
    ) -> None:
        self.step_index = step_index
        self.execution_id = str(uuid.uuid4())
        self._cache, self._pool = cache, pool
        self._script_name, self._digest = script_name, digest
        self._task = asyncio.create_task(self._prepare())

    async def _prepare(self) -> ReadyStep:
        content = await self._cache.get(self._digest)  # verified; may fetch, may raise
        # In the loop's thread, not a worker's: the loop is mostly waiting for the previous
        # step's process by now, and a thread hop per step cost more CPU than the
        # file-system calls themselves (measured: ~2 ms of worker CPU per step).
        workspace = self._pool.take()
        try:
            script = workspace.install_script(self._script_name, content)
        except BaseException:
            self._pool.give_back(workspace)
            raise
        return ReadyStep(content, script, workspace)

    async def take(self) -> ReadyStep:
        """The step made ready; the caller now owns its workspace (and gives it back).

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
        self._give_back(self._task)

    def discard(self) -> None:
        """Not used after all: its workspace goes back as soon as it exists."""
        self._task.add_done_callback(self._give_back)

    def _give_back(self, task: asyncio.Task[ReadyStep]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        self._pool.give_back(task.result().workspace)
