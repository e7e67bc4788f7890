"""A full disk under the library: told apart from other database errors, and a reserve of
space that lets scripts be deleted when nothing else can be written.

A write on a full disk answers RESOURCE_EXHAUSTED saying so (`StorageFull`), never
INTERNAL, and changes nothing: the transaction rolls back. Reads keep working. On SQLite
even a DELETE needs room (its pages go to the write-ahead log first), so the library keeps
a small reserve file beside the database; DeleteScript gives it up and tries once more
when the disk is full, so an operator can free space through the API. The reserve is made
again at the next start, once there is room.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import structlog

from shared.errors import ResourceExhausted

log = structlog.get_logger("hookshelf.storage")

RESERVE_NAME = ".space-reserve"
RESERVE_BYTES = 2 * 1024 * 1024
# PostgreSQL's disk_full and out-of-memory-for-files classes (SQLSTATE 53100, 53200 is
# memory and does not belong here).
_PG_DISK_FULL = "53100"
_OS_FULL = (errno.ENOSPC, errno.EDQUOT)


class StorageFull(ResourceExhausted):
    """The database's disk (or quota) is full: nothing more can be written."""

    reason = "STORAGE_FULL"


def is_storage_full(error: BaseException) -> bool:
    """Whether an exception (as raised through SQLAlchemy, or below it) says the disk is
    full: SQLite's SQLITE_FULL, PostgreSQL's disk_full, or ENOSPC/EDQUOT."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlite3.OperationalError) and (
            getattr(current, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
            or "database or disk is full" in str(current)
        ):
            return True
        if getattr(current, "sqlstate", None) == _PG_DISK_FULL:
            return True
        if isinstance(current, OSError) and current.errno in _OS_FULL:
            return True
        # SQLAlchemy keeps the driver's exception in .orig; Python chains in __cause__.
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def storage_full_error(where: str) -> StorageFull:
    return StorageFull(
        f"the library's storage is full ({where}): nothing can be written until space is "
        "freed; reads keep working, and DeleteScript still works to free space",
        metadata={"storage": where},
    )


class SpaceReserve:
    """A file of RESERVE_BYTES beside the SQLite database, given up when the disk is full."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / RESERVE_NAME

    def ensure(self) -> None:
        """Make the reserve if it is missing and there is room; never raises."""
        if self.path.exists():
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)  # real blocks, not a sparse file
            finally:
                os.close(fd)
        except FileExistsError:
            return
        except OSError as error:
            self.path.unlink(missing_ok=True)
            log.warning("storage.reserve_not_made", path=str(self.path), error=str(error))

    def release(self) -> bool:
        """Give the reserve's space back; False when there was none to give."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        log.warning("storage.reserve_released", path=str(self.path))
        return True
