"""Secret values of a kept post plan (and of the kept plans) are sealed in the journal with the executor's journal
key, come back as they were, and a journal sealed with a key the executor lacks stops it
with a clear error instead of running a hook with a wrong value."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from executor_service.journal import Journal, JournalKeyMissing, KeptPlan, RunRecord
from shared.stubs import library_pb2


def _plan(secret: str) -> list[library_pb2.PlanStep]:
    return [
        library_pb2.PlanStep(
            script_name="uses-secret",
            parameter_values={"API_TOKEN": secret, "PLAIN": "visible"},
            secret_parameter_names=["API_TOKEN"],
        )
    ]


async def _write_run(state_dir: Path, key: str, secret: str) -> None:
    journal = await Journal.open(state_dir, journal_key=key)
    try:
        await journal.create_run(
            RunRecord(run_id="r1", repository_id="repo", post_plan=_plan(secret))
        )
    finally:
        await journal.close()


def _journal_bytes(state_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in state_dir.glob("journal.db*"))


async def test_a_sealed_secret_is_not_in_the_file_and_comes_back_as_it_was(
    tmp_path: Path,
) -> None:
    key, secret = Fernet.generate_key().decode(), "s3cret-value-1234"
    await _write_run(tmp_path, key, secret)
    stored = _journal_bytes(tmp_path)
    assert secret.encode() not in stored
    assert b"visible" in stored  # only the secret names are sealed
    journal = await Journal.open(tmp_path, journal_key=key)
    try:
        run = await journal.get_run("r1")
    finally:
        await journal.close()
    assert run is not None
    assert dict(run.post_plan[0].parameter_values) == {"API_TOKEN": secret, "PLAIN": "visible"}


async def test_without_a_key_the_value_is_kept_as_it_is(tmp_path: Path) -> None:
    await _write_run(tmp_path, "", "plain-secret-5678")
    assert b"plain-secret-5678" in _journal_bytes(tmp_path)


@pytest.mark.parametrize("reopen_with", ["", "other"])
async def test_a_journal_sealed_with_another_key_or_none_is_refused(
    tmp_path: Path, reopen_with: str
) -> None:
    await _write_run(tmp_path, Fernet.generate_key().decode(), "s3cret")
    key = Fernet.generate_key().decode() if reopen_with == "other" else ""
    journal = await Journal.open(tmp_path, journal_key=key)
    try:
        with pytest.raises(JournalKeyMissing, match="HOOKSHELF_EXECUTOR_JOURNAL_KEY"):
            await journal.get_run("r1")
    finally:
        await journal.close()


async def test_a_malformed_key_is_refused_before_the_state_dir_is_taken(tmp_path: Path) -> None:
    with pytest.raises(JournalKeyMissing, match="not a Fernet key"):
        await Journal.open(tmp_path, journal_key="not-a-key")
    await (await Journal.open(tmp_path)).close()  # nothing was left locked


async def test_a_kept_plan_is_sealed_like_a_post_plan(tmp_path: Path) -> None:
    key, secret = Fernet.generate_key().decode(), "kept-s3cret-9876"
    journal = await Journal.open(tmp_path, journal_key=key)
    try:
        kept = KeptPlan("repo", library_pb2.HOOK_TYPE_PRE_BACKUP, _plan(secret), 1700000000.0)
        await journal.create_run(RunRecord(run_id="r1", repository_id="repo"), keep=[kept])
    finally:
        await journal.close()
    assert secret.encode() not in _journal_bytes(tmp_path)
    journal = await Journal.open(tmp_path, journal_key=key)
    try:
        found = await journal.kept_plans("repo")
    finally:
        await journal.close()
    (plan,) = found.values()
    assert plan.resolved_at == 1700000000.0
    assert dict(plan.steps[0].parameter_values) == {"API_TOKEN": secret, "PLAIN": "visible"}
