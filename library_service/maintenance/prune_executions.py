"""Prune the execution history (the activity feed): keep the newest N per script and/or
remove what is older than D days. Repeatable (a cron job): every run executes.

    python library_service/maintenance/prune_executions.py --keep-last 100
    python library_service/maintenance/prune_executions.py --older-than-days 90 --dry-run

Both options together keep the newest N of each script whatever their age and remove
the rest of what is older than D days. Deletes in short batches, so the library keeps
recording while it runs. usage_count and last_used_time follow the remaining history.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from library_service.maintenance import retention
from library_service.maintenance.framework import BaseScript, VerifyFailed, run_cli
from library_service.store.database import Database

MAX_LISTED = 20


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


class PruneExecutions(BaseScript):
    """Remove old execution records by age and/or count per script."""

    run_once = False  # retention is a recurring job, not a one-off

    def __init__(
        self,
        *,
        older_than_days: int | None = None,
        keep_last: int | None = None,
        dry_run: bool = False,
    ) -> None:
        super().__init__("prune_executions")
        self.options.older_than_days = older_than_days
        self.options.keep_last = keep_last
        self.options.dry_run = dry_run

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--older-than-days",
            type=_non_negative,
            default=None,
            help="remove executions that started more than DAYS ago",
        )
        parser.add_argument(
            "--keep-last",
            type=_non_negative,
            default=None,
            help="always keep the newest N executions of each script",
        )
        parser.add_argument("--dry-run", action="store_true", help="only say what would be removed")
        parser.add_argument("--batch-size", type=int, default=1000, help=argparse.SUPPRESS)

    def check_options(self, command: str) -> str | None:
        if (
            command == "run"
            and self.options.older_than_days is None
            and (self.options.keep_last is None)
        ):
            return "give --older-than-days DAYS and/or --keep-last N"
        return None

    def _policy(self) -> retention.Policy:
        days = self.options.older_than_days
        cutoff = datetime.now(UTC) - timedelta(days=days) if days is not None else None
        return retention.Policy(keep_last=self.options.keep_last, cutoff=cutoff)

    async def execute(self, db: Database) -> None:
        problem = self.check_options("run")
        if problem:
            raise ValueError(problem)
        self.policy = self._policy()  # one cutoff for execute and verify
        counts = await retention.count(db, self.policy)
        total = sum(counts.values())
        largest = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:MAX_LISTED]
        for name, number in largest:
            self.log(f"  {name or '(no name)'}: {number}")
        if getattr(self.options, "dry_run", False):
            self.log(f"dry run: would remove {total} execution(s); nothing removed")
            self.details = {"dry_run": True, "would_remove": total}
            return
        removed = 0
        batch = getattr(self.options, "batch_size", 1000)
        while deleted := await retention.delete_batch(db, self.policy, batch):
            removed += deleted
        self.log(f"removed {removed} execution(s)")
        self.details = {"dry_run": False, "removed": removed}

    async def verify(self, db: Database) -> bool:
        if getattr(self.options, "dry_run", False):
            return True
        left = sum((await retention.count(db, self.policy)).values())
        if left:
            raise VerifyFailed(f"{left} execution(s) the policy removes are still there")
        return True


if __name__ == "__main__":
    run_cli(PruneExecutions())
