"""The run locks: exclusive across holders (a file lock on SQLite, an advisory lock on
PostgreSQL), released on release, per script name."""

from __future__ import annotations

from pathlib import Path

from library_service.maintenance.framework import locks


def test_the_advisory_key_is_a_stable_signed_64_bit_number() -> None:
    key = locks.advisory_key("install_templates")
    assert key == locks.advisory_key("install_templates")
    assert key != locks.advisory_key("prune_executions")
    assert -(2**63) <= key < 2**63


def test_the_lock_file_sits_next_to_the_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"
    assert locks.lock_file_for(url, "a/b c") == tmp_path / "library.db.maintenance-a_b_c.lock"


async def _exclusive(url: str) -> None:
    first, second = locks.lock_for(url, "sample"), locks.lock_for(url, "sample")
    other = locks.lock_for(url, "other")
    assert await first.try_acquire()
    try:
        assert not await second.try_acquire()
        assert await other.try_acquire()
        await other.release()
        assert not await locks.acquire(second, wait_seconds=0.3)
    finally:
        await first.release()
    assert await second.try_acquire()
    await second.release()


async def test_a_file_lock_is_exclusive(tmp_path: Path) -> None:
    await _exclusive(f"sqlite+aiosqlite:///{tmp_path / 'library.db'}")


async def test_an_advisory_lock_is_exclusive(postgres_url: str) -> None:
    lock = locks.lock_for(postgres_url, "sample")
    assert isinstance(lock, locks.AdvisoryLock)
    await _exclusive(postgres_url)
