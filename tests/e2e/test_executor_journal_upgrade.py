"""An executor upgraded in place keeps its promises: a real executor process started on a
state dir whose journal the previous code wrote (the layout before schema versions,
tests/fixtures/journal_v0.sql) runs the post chain that journal owes, exactly once, and
leaves the journal at the current schema version.

The journal holds a run whose pre chain was cut short (``pre_started``, one pre attempt
never ended), as an executor killed in its pre chain leaves it; its stored post plan has
one step that runs on any outcome and appends a line to ``$MARKS``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

from executor_service.journal import SCHEMA_VERSION
from shared.stubs import executor_pb2, library_pb2
from tests.e2e.cli_support import clean_env
from tests.e2e.test_executor_process import ExecutorProcess
from tests.e2e.test_executor_restart import _wait_ended
from tests.fixtures import make_journal_v0 as v0
from tests.service.assignments_support import DEADLINE, POST, PRE, make_script


def _user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def _fixture_executor_id(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT value FROM meta WHERE key = 'executor_id'").fetchone()[0]
    finally:
        db.close()


async def _history(library, run_id: str, count: int, timeout: float = 60):
    """The library's records of the run, once it has ``count`` of them."""
    async with asyncio.timeout(timeout):
        while True:
            records = list(
                (
                    await library.stub.ListExecutions(
                        library_pb2.ListExecutionsRequest(run_id=run_id, page_size=100),
                        timeout=DEADLINE,
                    )
                ).executions
            )
            if len(records) >= count:
                return records
            await asyncio.sleep(0.1)


async def test_a_post_chain_owed_by_an_old_journal_runs_once_after_the_upgrade(
    library, tmp_path: Path, short_socket_dir: Path
) -> None:
    # The library knows the post step's content (the plan holds its digest only).
    script = await make_script(library, v0.POST_NAME, content=v0.POST_CONTENT)
    assert script.digest == v0.POST_DIGEST
    state_dir, marks = tmp_path / "state", tmp_path / "marks"
    journal = v0.load_fixture(state_dir, marks)
    assert _user_version(journal) == 0
    executor_id = _fixture_executor_id(journal)

    executor = ExecutorProcess(
        library_address=library.address, state_dir=state_dir, socket_dir=short_socket_dir
    )
    await executor.start()
    try:
        run = await _wait_ended(executor, v0.RUN_ID)
        assert run.outcome == library_pb2.BACKUP_OUTCOME_ABORTED
        assert run.verdict == executor_pb2.VERDICT_ABORT
        assert [(s.hook_type, s.status) for s in run.steps] == [
            (PRE, library_pb2.EXECUTION_STATUS_FAILED),  # the attempt the kill cut short
            (POST, library_pb2.EXECUTION_STATUS_SUCCEEDED),
        ]
        await _history(library, v0.RUN_ID, 2)
        assert await executor.terminate() == 0

        # Started again: the journal owes nothing more.
        await executor.start()
        run = await _wait_ended(executor, v0.RUN_ID)
        assert len(run.steps) == 2
        assert await executor.terminate() == 0
    finally:
        await executor.stop_if_running()

    assert marks.read_text().splitlines() == [f"{v0.POST_NAME} aborted"]
    records = await _history(library, v0.RUN_ID, 2)
    post = [r for r in records if r.hook_type == POST]
    pre = [r for r in records if r.hook_type == PRE]
    assert [(r.script_name, r.status) for r in post] == [
        (v0.POST_NAME, library_pb2.EXECUTION_STATUS_SUCCEEDED)
    ]
    assert [r.execution_id for r in pre] == [v0.PRE_EXECUTION_ID]
    assert "interrupted" in pre[0].error_message
    assert len(records) == 2
    # The upgraded journal kept the executor's identity, and records its version now.
    assert {r.executor_id for r in records} == {executor_id}
    assert _user_version(journal) == SCHEMA_VERSION


def test_an_executor_refuses_a_journal_from_a_newer_executor_in_one_line(tmp_path: Path) -> None:
    """Downgrading is never silent: the older executor exits 1 saying why, no traceback,
    and leaves the journal as it found it."""
    state_dir = tmp_path / "executor"
    state_dir.mkdir(mode=0o700)
    journal = state_dir / "journal.db"
    with sqlite3.connect(journal) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    env = clean_env(
        HOOKSHELF_EXECUTOR_STATE_DIR=str(state_dir),
        HOOKSHELF_EXECUTOR_LISTEN=f"unix:{tmp_path}/executor.sock",
    )
    result = subprocess.run(
        [sys.executable, "-m", "executor_service"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result
    assert "executor: cannot start:" in result.stderr
    assert "written by a newer executor" in result.stderr
    assert "Traceback" not in result.stderr
    assert _user_version(journal) == SCHEMA_VERSION + 1
    assert not (tmp_path / "executor.sock").exists()
