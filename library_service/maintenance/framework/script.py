"""`TrackedScript`: what a tracked maintenance script implements.

A script subclasses `BaseScript` (this contract plus its command line, `cli.py`) and
gives `execute` (required), `verify` (should: a run is a success only when it passes)
and `rollback` (optional). The runner (`runner.py`) does the
rest: the lock, the tracker row, the heartbeat, the verdict. Start a script file with the
standard path set-up, so it runs directly from its file:

    import sys
    from pathlib import Path

    if __package__ in (None, ""):  # run as a file: make the repository importable
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

and end it with ``if __name__ == "__main__": run_cli(MyScript())``.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from library_service.maintenance.framework.tracker import TrackedRun
from library_service.store.database import Database


class RollbackNotSupported(Exception):
    """The script has no rollback."""


class VerifyFailed(Exception):
    """Raised by `verify` to say why the run does not count as a success."""


class TrackedScript:
    """A named, tracked maintenance script: what the runner needs of it. Scripts subclass
    `BaseScript` (cli.py), which adds ``main``; subclasses call ``super().__init__(name)``."""

    # A success is not repeated without --force. Repeatable jobs (pruning) set False.
    run_once: bool = True
    # Run again, without --force, when the checksum differs from the last success's
    # (scripts whose inputs ship with the package, such as the templates).
    rerun_when_changed: bool = False
    # The lease a run holds on its tracker row and how often it renews it.
    lease_seconds: float = 60.0
    heartbeat_seconds: float = 10.0

    def __init__(self, name: str) -> None:
        self.name = name
        # What a run keeps for a later rollback (JSON): ids it created, for instance.
        self.details: dict[str, Any] = {}
        # During a rollback: the run being undone, with its details.
        self.target: TrackedRun | None = None
        self.options = self.parse_options([])
        self._output: list[str] = []
        self._echo: Callable[[str], None] = print

    # --- to implement ----------------------------------------------------------------

    async def execute(self, db: Database) -> None:
        """Do the work. Raise to fail; the exception's message becomes the run's error."""
        raise NotImplementedError

    async def verify(self, db: Database) -> bool:
        """Check that the work is done. False (or VerifyFailed) makes the run failed."""
        return True

    async def rollback(self, db: Database) -> None:
        """Undo `self.target` (the last successful run; its `details` say what it did)."""
        raise RollbackNotSupported(f"{self.name} has no rollback")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Options of the script itself (besides run/--force/rollback/status)."""

    def check_options(self, command: str) -> str | None:
        """A usage problem with `self.options` for `command` (run or rollback), or None.
        The CLI reports it (exit 2) before anything is opened or recorded."""
        return None

    # --- helpers for subclasses ----------------------------------------------------

    def log(self, message: str) -> None:
        """A line of the run's output: shown now and kept in the tracker row."""
        self._output.append(message)
        self._echo(message)

    @property
    def output(self) -> str:
        return "\n".join(self._output)

    def parse_options(self, argv: list[str]) -> argparse.Namespace:
        parser = argparse.ArgumentParser(prog=self.name, add_help=False)
        self.add_arguments(parser)
        return parser.parse_args(argv)

    def source_files(self) -> list[Path]:
        """The files whose content is the script: its own source by default."""
        source = inspect.getsourcefile(type(self))
        if source is None:
            return []
        return [Path(source).resolve()]

    def checksum(self) -> str:
        """sha256 of the source file; of the file digests in order when there are several."""
        files = self.source_files()
        if len(files) == 1:
            return "sha256:" + hashlib.sha256(files[0].read_bytes()).hexdigest()
        combined = hashlib.sha256()
        for path in files:
            combined.update(
                f"{path.name}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode()
            )
        return "sha256:" + combined.hexdigest()

    def reset(self, echo: Callable[[str], None]) -> None:
        """Called by the runner before each run or rollback."""
        self.details, self._output, self._echo = {}, [], echo
