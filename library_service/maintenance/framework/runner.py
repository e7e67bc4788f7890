"""Running a tracked script: lock, tracker row, heartbeat, execute, verify, verdict.

Every entry point (the CLI, `run_script` at start-up, the tests) goes through `run`,
`rollback` and `status` here, and gets an `Outcome` back.
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from library_service.maintenance.framework import locks, tracker
from library_service.maintenance.framework.environment import EnvironmentNotAllowed
from library_service.maintenance.framework.script import (
    RollbackNotSupported,
    TrackedScript,
    VerifyFailed,
)
from library_service.maintenance.framework.store import open_database
from library_service.maintenance.framework.tracker import TrackedRun
from library_service.store.database import Database

log = structlog.get_logger("hookshelf.maintenance")

# Outcome statuses besides the tracker's success / failed / rolled_back.
SKIPPED = "skipped"  # already done, nothing to do: exit 0
BUSY = "busy"  # another process holds the script's lock: exit 3
REFUSED = "refused"  # the environment guard said no: exit 4
REPORTED = "reported"  # status

EXIT_CODES = {
    tracker.SUCCESS: 0,
    tracker.ROLLED_BACK: 0,
    SKIPPED: 0,
    REPORTED: 0,
    tracker.FAILED: 1,
    BUSY: 3,
    REFUSED: 4,
}

# How long a run that finds the lock taken, but no run holding it, keeps trying: the
# holder is then a `status` probing the lock, or a run that has not written its row yet.
SETTLE_SECONDS = 2.0


@dataclass
class Outcome:
    """What happened, for a person (message) and a program (status, exit_code)."""

    script: str
    action: str
    status: str
    message: str
    run_id: int | None = None
    edited: bool = False
    runs: list[TrackedRun] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


async def run(
    script: TrackedScript,
    db: Database,
    *,
    force: bool = False,
    wait_seconds: float = 0.0,
    echo: Callable[[str], None] = print,
) -> Outcome:
    """Run the script unless it is done (or running elsewhere); record how it went."""
    lock = locks.lock_for(db.url, script.name)
    if not await _acquire(lock, db, script.name, wait_seconds):
        return await _busy(db, script.name, "run")
    try:
        await tracker.reap_interrupted(db.engine, script.name, owner_gone=True)
        checksum = script.checksum()
        skip = await _already_done(script, db, checksum, force)
        if skip is not None:
            return skip
        return await _tracked(script, db, tracker.RUN, force, checksum, echo)
    finally:
        await lock.release()


async def rollback(
    script: TrackedScript, db: Database, *, echo: Callable[[str], None] = print
) -> Outcome:
    """Undo the last successful run; it becomes rolled_back, the rollback gets a row."""
    if type(script).rollback is TrackedScript.rollback:
        return Outcome(script.name, "rollback", tracker.FAILED, f"{script.name} has no rollback")
    lock = locks.lock_for(db.url, script.name)
    if not await _acquire(lock, db, script.name, 0.0):
        return await _busy(db, script.name, "rollback")
    try:
        await tracker.reap_interrupted(db.engine, script.name, owner_gone=True)
        target = await tracker.last_finished(db.engine, script.name)
        if target is None or target.status != tracker.SUCCESS:
            state = "has never run" if target is None else f"last run is {target.status}"
            return Outcome(
                script.name,
                "rollback",
                tracker.FAILED,
                f"{script.name}: nothing to roll back ({state})",
            )
        script.target = target
        outcome = await _tracked(script, db, tracker.ROLLBACK, False, script.checksum(), echo)
        if outcome.status == tracker.SUCCESS:
            await tracker.mark(db.engine, target.id, tracker.ROLLED_BACK)
            outcome.status = tracker.ROLLED_BACK
            outcome.message = f"{script.name}: run {target.id} rolled back"
        return outcome
    finally:
        script.target = None
        await lock.release()


async def status(script: TrackedScript, db: Database, *, limit: int = 10) -> Outcome:
    """Report the runs; on the way, mark runs whose process died as interrupted."""
    lock = locks.lock_for(db.url, script.name)
    if await lock.try_acquire():
        try:
            await tracker.reap_interrupted(db.engine, script.name, owner_gone=True)
        finally:
            await lock.release()
    else:
        await tracker.reap_interrupted(db.engine, script.name, owner_gone=False)
    runs = await tracker.recent(db.engine, script.name, limit)
    last_success = await tracker.last_finished(db.engine, script.name, status=tracker.SUCCESS)
    checksum = script.checksum()
    edited = last_success is not None and last_success.checksum != checksum
    lines = [_state_line(script.name, runs)]
    if edited:
        assert last_success is not None
        lines.append(
            f"  EDITED: the script changed since its last success (run {last_success.id}): "
            f"{last_success.checksum} -> {checksum}"
            + (
                "; it runs again on the next run"
                if script.rerun_when_changed
                else "; use --force to run it again"
            )
        )
    lines.extend(_run_line(run) for run in runs)
    return Outcome(script.name, "status", REPORTED, "\n".join(lines), edited=edited, runs=runs)


async def run_script(
    script: TrackedScript,
    *,
    database: Database | None = None,
    database_url: str | None = None,
    force: bool = False,
    wait_seconds: float = 60.0,
) -> Outcome:
    """For start-up code: run (if not done yet) and return the outcome; never exits.

    It waits for a run holding the lock elsewhere (another replica starting at the same
    time) and then finds the script done. Output goes to the structured log.
    """
    db = database or await open_database(database_url)
    try:
        outcome = await run(
            script,
            db,
            force=force,
            wait_seconds=wait_seconds,
            echo=lambda line: log.info("maintenance.output", script=script.name, line=line),
        )
    finally:
        if database is None:
            await db.close()
    log.info(
        "maintenance.finished",
        script=script.name,
        status=outcome.status,
        message=outcome.message,
        run_id=outcome.run_id,
    )
    return outcome


# --- internals -------------------------------------------------------------------------


async def _acquire(lock: locks.RunLock, db: Database, name: str, wait_seconds: float) -> bool:
    if await locks.acquire(lock, wait_seconds):
        return True
    # Taken, but if no run of this script is pending the holder is a passing `status`
    # or a run about to write its row: give it a moment before calling the script busy.
    if not await tracker.pending(db.engine, name):
        return await locks.acquire(lock, SETTLE_SECONDS)
    return False


async def _busy(db: Database, name: str, action: str) -> Outcome:
    await tracker.reap_interrupted(db.engine, name, owner_gone=False)
    running = await tracker.pending(db.engine, name)
    if running:
        current = running[0]
        message = (
            f"{name} is already running: run {current.id} ({current.action}) on "
            f"{current.where()}, started {current.started_at:%Y-%m-%d %H:%M:%S}Z, "
            f"last heartbeat {current.heartbeat_at:%H:%M:%S}Z"
        )
        return Outcome(name, action, BUSY, message, run_id=current.id)
    return Outcome(name, action, BUSY, f"{name} is locked by another process")


async def _already_done(
    script: TrackedScript, db: Database, checksum: str, force: bool
) -> Outcome | None:
    """The skip verdict when the last run succeeded and nothing asks for another."""
    if force or not script.run_once:
        return None
    last = await tracker.last_finished(db.engine, script.name)
    if last is None or last.status != tracker.SUCCESS:
        return None
    if last.checksum != checksum:
        if script.rerun_when_changed:
            return None
        note = f"; the script was edited since ({last.checksum} -> {checksum}), use --force"
    else:
        note = "; use --force to run it again"
    message = (
        f"{script.name} already ran successfully (run {last.id} at "
        f"{last.finished_at:%Y-%m-%d %H:%M:%S}Z){note}"
    )
    return Outcome(
        script.name, "run", SKIPPED, message, run_id=last.id, edited=last.checksum != checksum
    )


async def _tracked(
    script: TrackedScript,
    db: Database,
    action: str,
    force: bool,
    checksum: str,
    echo: Callable[[str], None],
) -> Outcome:
    """The body of a run or rollback, inside the lock: one tracker row from start to end."""
    script.reset(echo)
    row = await tracker.start(
        db.engine,
        script.name,
        action=action,
        forced=force,
        checksum=checksum,
        lease=script.lease_seconds,
    )
    beat = asyncio.create_task(_heartbeat(script, db, row.id))
    status, error, outcome_status = tracker.FAILED, "", tracker.FAILED
    try:
        try:
            if action == tracker.RUN:
                await script.execute(db)
                error = await _verify(script, db)
            else:
                await script.rollback(db)
            status = outcome_status = tracker.FAILED if error else tracker.SUCCESS
        except EnvironmentNotAllowed as refused:
            error, outcome_status = str(refused), REFUSED
        except (RollbackNotSupported, VerifyFailed) as failure:
            error = str(failure)
        except Exception as failure:  # noqa: BLE001 - the script's failure is recorded, not raised
            error = f"{type(failure).__name__}: {failure}\n{traceback.format_exc()}"
        except BaseException:  # cancelled, Ctrl-C, SIGTERM: record why, then go on stopping
            with contextlib.suppress(Exception):
                await _finish(script, db, row, tracker.FAILED, "interrupted: cancelled")
            raise
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
    await _finish(script, db, row, status, error)
    verb = "ran" if action == tracker.RUN else "rolled back"
    message = (
        f"{script.name}: {verb} successfully (run {row.id}, {row.duration_ms} ms)"
        if status == tracker.SUCCESS
        else f"{script.name}: {action} failed (run {row.id}): {error.splitlines()[0] if error else ''}"
    )
    return Outcome(script.name, action, outcome_status, message, run_id=row.id)


async def _verify(script: TrackedScript, db: Database) -> str:
    """The reason the run is not a success, or "" when verify passes."""
    try:
        if await script.verify(db):
            return ""
        return "verify failed: verify() returned False after execute"
    except VerifyFailed as failure:
        return f"verify failed: {failure}"


async def _finish(
    script: TrackedScript, db: Database, row: TrackedRun, status: str, error: str
) -> None:
    await tracker.finish(
        db.engine,
        row,
        status=status,
        output=script.output,
        error=error,
        details=script.details,
    )


async def _heartbeat(script: TrackedScript, db: Database, run_id: int) -> None:
    """Renew the lease while the run lives; a missed beat is retried at the next one."""
    while True:
        await asyncio.sleep(script.heartbeat_seconds)
        try:
            await tracker.heartbeat(
                db.engine, run_id, lease=script.lease_seconds, output=script.output
            )
        except Exception as error:  # noqa: BLE001 - a transient database error must not end the run
            log.warning("maintenance.heartbeat_failed", script=script.name, error=str(error))


def _state_line(name: str, runs: list[TrackedRun]) -> str:
    runs_only = [run for run in runs if run.action == tracker.RUN]
    if not runs:
        return f"{name}: never run"
    current = next((run for run in runs if run.status == tracker.PENDING), None)
    if current is not None:
        return f"{name}: running (run {current.id} on {current.where()})"
    last = runs_only[0] if runs_only else runs[0]
    return f"{name}: {last.status} (run {last.id})"


def _run_line(run: TrackedRun) -> str:
    when = f"{run.started_at:%Y-%m-%d %H:%M:%S}Z"
    took = f"{run.duration_ms} ms" if run.duration_ms is not None else "-"
    flags = " forced" if run.forced else ""
    line = f"  #{run.id} {run.action} {run.status}{flags} {when} {took} {run.where()} {run.checksum[:19]}"
    if run.error:
        line += f"\n      error: {run.error.splitlines()[0]}"
    return line
