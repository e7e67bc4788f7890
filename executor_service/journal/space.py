"""Room in the state dir: new runs are refused before it runs out, and a reserve lets the
runs already open finish their post chains when it has run out anyway.

The journal is the promise: a run whose row cannot be written must not start, and a run
already open must still be able to write its post chain's steps. So:

- `StateDirSpace.check_room` (BeginBackup, before anything is resolved or started)
  refuses with RESOURCE_EXHAUSTED (``STATE_DIR_FULL``) while the file system holding the
  state dir has less than MIN_FREE_BYTES free — room kept for the post chains owed by
  the runs already open (a step writes a few KiB) — or while the reserve is spent.
- ``<state_dir>/.space-reserve`` holds RESERVE_BYTES. When a journal commit fails because
  the disk is full (SQLITE_FULL) anyway (something else filled the volume: a hook, a dump
  on the same disk), the reserve is deleted and the commit tried once more: a post chain
  owed keeps its promise. It is made again once there is room.

Nothing here writes to the journal: the checks are a statvfs, microseconds.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import structlog

from shared.errors import ResourceExhausted

log = structlog.get_logger("hookshelf.executor.space")

RESERVE_NAME = ".space-reserve"
RESERVE_BYTES = 4 * 1024 * 1024
MIN_FREE_BYTES = 16 * 1024 * 1024


class StateDirFull(ResourceExhausted):
    reason = "STATE_DIR_FULL"


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


class StateDirSpace:
    """The state dir's free space and its reserve file (safe from any thread)."""

    def __init__(
        self, state_dir: Path, *, min_free: int = MIN_FREE_BYTES, reserve: int = RESERVE_BYTES
    ) -> None:
        self.state_dir = state_dir
        self.path = state_dir / RESERVE_NAME
        self.min_free = min_free
        self.reserve = reserve
        self._lock = threading.Lock()

    def free_bytes(self) -> int:
        stats = os.statvfs(self.state_dir)
        return stats.f_bavail * stats.f_frsize

    def ensure_reserve(self) -> bool:
        """Make the reserve if it is missing and there is room for it and for MIN_FREE
        besides; True when it is in place."""
        with self._lock:
            if self.path.exists():
                return True
            if self.free_bytes() < self.min_free + self.reserve:
                return False
            temp = self.path.with_name(RESERVE_NAME + ".tmp")
            try:
                # Written, not sparse: its blocks must really be taken from the volume.
                with open(temp, "wb") as file:
                    chunk = b"\0" * (1024 * 1024)
                    file.writelines(chunk for _ in range(self.reserve // len(chunk)))
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temp, self.path)
            except OSError as error:
                temp.unlink(missing_ok=True)
                log.warning("space.reserve_not_made", error=str(error))
                return False
            log.info("space.reserve_made", path=str(self.path), bytes=self.reserve)
            return True

    def release_reserve(self) -> bool:
        """Give the reserve back to the file system; True if there was one."""
        with self._lock:
            try:
                self.path.unlink()
            except FileNotFoundError:
                return False
        log.error(
            "space.reserve_released",
            state_dir=str(self.state_dir),
            hint="the state dir's volume is full: new runs are refused until there is room",
        )
        return True

    def check_room(self) -> None:
        """Raise StateDirFull unless a new run may start."""
        free = self.free_bytes()
        if free < self.min_free:
            raise StateDirFull(
                f"the executor's state dir {self.state_dir} has {_mib(free)} free, less than "
                f"the {_mib(self.min_free)} it keeps for the post chains of open runs: no new "
                "run starts until there is room (free space on its volume, or grow it)",
                metadata={"state_dir": str(self.state_dir), "free_bytes": str(free)},
            )
        if not self.ensure_reserve():
            raise StateDirFull(
                f"the executor's state dir {self.state_dir} ran out of space and its reserve "
                f"is spent ({_mib(free)} free now): no new run starts until there is room "
                f"for the reserve again ({_mib(self.min_free + self.reserve)})",
                metadata={"state_dir": str(self.state_dir), "free_bytes": str(free)},
            )
