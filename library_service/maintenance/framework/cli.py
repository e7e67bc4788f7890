"""The command line every tracked script gets:

    python x.py [run] [--force] [script options]   run (bare form = run)
    python x.py rollback [script options]          undo the last successful run
    python x.py status [--limit N]                 runs, the running one, an edited script

Common: --database-url (default: the settings' database). Exit codes: 0 done (or already
done), 1 failed, 2 bad usage, 3 another process is running it, 4 refused by the
environment guard.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import NoReturn

from library_service.maintenance.framework import runner
from library_service.maintenance.framework.script import TrackedScript
from library_service.maintenance.framework.store import open_database

COMMANDS = ("run", "rollback", "status")


def build_parser(script: TrackedScript, command: str) -> argparse.ArgumentParser:
    summary = (type(script).__doc__ or "").strip().split("\n\n")[0]
    parser = argparse.ArgumentParser(prog=f"{script.name} {command}", description=summary)
    parser.add_argument(
        "--database-url", default=None, help="SQLAlchemy URL (default: from HOOKSHELF_* settings)"
    )
    if command == "run":
        parser.add_argument("--force", action="store_true", help="run even if already done")
    if command == "status":
        parser.add_argument("--limit", type=int, default=10, help="how many runs to list")
    if command in ("run", "rollback"):
        script.add_arguments(parser)
    return parser


def parse(script: TrackedScript, argv: list[str]) -> tuple[str, argparse.Namespace]:
    """Split off the command (default run), parse the rest for it."""
    command = "run"
    if argv and argv[0] in COMMANDS:
        command, argv = argv[0], argv[1:]
    parser = build_parser(script, command)
    args = parser.parse_args(argv)
    if command != "status":
        script.options = args
        problem = script.check_options(command)
        if problem:
            parser.error(problem)
    return command, args


async def dispatch(script: TrackedScript, command: str, args: argparse.Namespace) -> runner.Outcome:
    """Open the database, do the command, close."""
    script.options = args
    db = await open_database(args.database_url)
    try:
        if command == "status":
            return await runner.status(script, db, limit=args.limit)
        if command == "rollback":
            return await runner.rollback(script, db)
        return await runner.run(script, db, force=args.force)
    finally:
        await db.close()


async def _main(script: TrackedScript, command: str, args: argparse.Namespace) -> runner.Outcome:
    # SIGTERM cancels the run like Ctrl-C does, so its row says "interrupted" at once
    # instead of waiting for the next caller to find the lock free.
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, task.cancel)  # type: ignore[union-attr]  # current_task() is never None inside a running task
    return await dispatch(script, command, args)


def run_cli(script: TrackedScript, argv: list[str] | None = None) -> NoReturn:
    """Parse the command line, run the command, print the outcome, exit with its code."""
    command, args = parse(script, sys.argv[1:] if argv is None else argv)
    try:
        outcome = asyncio.run(_main(script, command, args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"{script.name}: interrupted", file=sys.stderr)
        sys.exit(130)
    stream = sys.stdout if outcome.ok else sys.stderr
    print(outcome.message, file=stream)
    sys.exit(outcome.exit_code)


class BaseScript(TrackedScript):
    """What a maintenance script subclasses: the runner's contract (`TrackedScript`) and
    its command line. It lives here, above the runner, so no module imports back up."""

    def main(self, argv: list[str] | None = None) -> NoReturn:
        """``MyScript().main()``: the older spelling of ``run_cli(MyScript())``."""
        run_cli(self, argv)


def main(script: TrackedScript, argv: list[str] | None = None) -> NoReturn:
    """Older scripts end with ``main(MyScript())``; same as run_cli."""
    run_cli(script, argv)
