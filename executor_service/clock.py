"""Wall-clock time for leases and records.

Leases are absolute epoch seconds (UTC) in the journal so they survive a restart; a
monotonic clock would not. Tests move the clock forward instead of waiting out a lease.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Seconds since the epoch, with an offset tests can advance."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Pretend ``seconds`` passed (tests: lease expiry without the wait)."""
        self._offset += seconds

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)


def iso_utc(epoch_seconds: float) -> str:
    """ISO 8601 in UTC with a Z, as hooks get HOOKSHELF_BACKUP_DATE."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
