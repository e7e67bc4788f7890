"""GetScript and ListScripts answers are kept and served again, but never after anything
was committed to the database, by this server, another process or another replica
(store/read_cache.py). Real servers, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap

import asyncpg
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import create_async_engine

from library_service.store.change_stamp import PostgresSnapshotStamp, SqliteDataVersion
from library_service.store.read_cache import ReadCache
from shared.settings import Settings
from shared.stubs import library_pb2
from tests.conftest import open_library
from tests.service.assignments_support import DEADLINE
from tests.service.scripts_support import create, get, update


def _reads(result: str) -> float:
    return REGISTRY.get_sample_value("hookshelf_library_read_cache_total", {"result": result}) or 0


async def _page(library, **filters) -> library_pb2.ListScriptsResponse:
    return await library.stub.ListScripts(
        library_pb2.ListScriptsRequest(page_size=100, **filters), timeout=DEADLINE
    )


def _commit_from_another_process(database_url: str, sql: str) -> None:
    """Run sql in a separate Python process, as a maintenance command or psql would."""
    if database_url.startswith("sqlite"):
        program = f"""
            import sqlite3
            connection = sqlite3.connect({database_url.split(":///", 1)[1]!r})
            connection.execute({sql!r})
            connection.commit()
        """
    else:
        program = f"""
            import asyncio, asyncpg
            async def main():
                connection = await asyncpg.connect({database_url.replace("+asyncpg", "")!r})
                await connection.execute({sql!r})
                await connection.close()
            asyncio.run(main())
        """
    subprocess.run([sys.executable, "-c", textwrap.dedent(program)], check=True, timeout=60)


async def test_a_repeated_read_is_served_from_the_cache(library) -> None:
    made = await create(library, description="first")
    first = await get(library, made.id)
    hits = _reads("hit")

    again = await get(library, made.id)

    assert again == first
    assert _reads("hit") == hits + 1


async def test_an_update_through_the_api_is_seen_by_the_next_read(library) -> None:
    made = await create(library, description="before")
    await get(library, made.id)
    await _page(library)

    await update(library, made.id, ["description"], description="after", etag=made.etag)

    assert (await get(library, made.id)).script.description == "after"
    assert [s.description for s in (await _page(library)).scripts] == ["after"]


async def test_a_commit_by_another_process_is_seen_by_the_next_read(library, database_url) -> None:
    made = await create(library, description="before")
    assert (await get(library, made.id)).script.description == "before"
    assert (await _page(library)).scripts[0].description == "before"

    _commit_from_another_process(
        database_url, f"UPDATE scripts SET description = 'changed elsewhere' WHERE id = '{made.id}'"
    )

    assert (await get(library, made.id)).script.description == "changed elsewhere"
    assert (await _page(library)).scripts[0].description == "changed elsewhere"


async def test_a_write_through_another_replica_is_seen_at_once(library, library_settings) -> None:
    """Two library servers on one database, as two replicas behind a load balancer."""
    made = await create(library, description="before")
    replica_settings = library_settings.model_copy(update={"mirror_enabled": False})
    async with open_library(replica_settings) as replica:
        assert (await get(replica, made.id)).script.description == "before"

        await update(library, made.id, ["description"], description="after", etag=made.etag)

        assert (await get(replica, made.id)).script.description == "after"


async def test_recorded_executions_update_usage_in_the_next_read(library) -> None:
    made = await create(library)
    assert (await _page(library)).scripts[0].usage_count == 0

    await library.stub.RecordExecutions(
        library_pb2.RecordExecutionsRequest(
            executions=[
                library_pb2.Execution(
                    execution_id="exec-1",
                    script_id=made.id,
                    status=library_pb2.EXECUTION_STATUS_SUCCEEDED,
                    trigger=library_pb2.EXECUTION_TRIGGER_BACKUP,
                    start_time={"seconds": 1_780_000_000},
                )
            ]
        ),
        timeout=DEADLINE,
    )

    assert (await _page(library)).scripts[0].usage_count == 1
    assert (await get(library, made.id)).script.usage_count == 1


async def test_not_found_is_not_kept(library) -> None:
    by_name = library_pb2.GetScriptRequest(name="appears-later")
    try:
        await library.stub.GetScript(by_name, timeout=DEADLINE)
        raise AssertionError("expected NOT_FOUND")
    except Exception as error:  # noqa: BLE001 - checked below
        assert error.code().name == "NOT_FOUND"  # type: ignore[attr-defined]

    made = await create(library, name="appears-later")

    assert (await library.stub.GetScript(by_name, timeout=DEADLINE)).script.id == made.id


async def test_with_the_cache_off_every_read_queries(library_settings) -> None:
    settings = library_settings.model_copy(update={"read_cache_bytes": 0})
    async with open_library(settings) as library:
        made = await create(library)
        hits = _reads("hit")
        await get(library, made.id)
        await get(library, made.id)
        assert _reads("hit") == hits


async def test_reads_stay_correct_while_the_postgres_stamp_connection_is_lost(
    postgres_url, tmp_path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=postgres_url,
        library_listen="127.0.0.1:0",
        log_format="console",
        install_templates=False,
    )
    async with open_library(settings) as library:
        made = await create(library, description="before")
        await get(library, made.id)
        admin = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
        try:
            # Cut every other session to the library's database, the stamp's included.
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            await admin.execute(f"UPDATE scripts SET description = 'after' WHERE id = '{made.id}'")
        finally:
            await admin.close()
        bypassed = _reads("bypass")

        assert (await get(library, made.id)).script.description == "after"
        assert _reads("bypass") == bypassed + 1
        # The stamp reconnects on the next read, and caching resumes.
        await get(library, made.id)
        hits = _reads("hit")
        assert (await get(library, made.id)).script.description == "after"
        assert _reads("hit") == hits + 1


# --- the cache and the stamps without a server ------------------------------------------


class _FixedStamp:
    def __init__(self) -> None:
        self.value: str | None = "1"

    async def current(self) -> str | None:
        return self.value

    async def close(self) -> None:
        return None


def _answer(size: int) -> library_pb2.GetScriptResponse:
    return library_pb2.GetScriptResponse(script=library_pb2.Script(content="x" * size))


async def test_memory_stays_within_the_limit_oldest_out_first() -> None:
    cache = ReadCache(_FixedStamp(), max_bytes=10_000)
    loads: list[int] = []

    async def read(i: int) -> None:
        async def load() -> library_pb2.GetScriptResponse:
            loads.append(i)
            return _answer(2_000)

        await cache.read("GetScript", library_pb2.GetScriptRequest(id=str(i)), load)

    for i in range(10):
        await read(i)
    assert cache.size_bytes <= 10_000
    await read(9)  # newest: kept
    await read(0)  # oldest: evicted, loaded again
    assert loads == [*range(10), 0]


async def test_without_a_stamp_nothing_is_served_from_memory() -> None:
    stamp = _FixedStamp()
    stamp.value = None
    cache = ReadCache(stamp, max_bytes=1_000_000)
    loads = 0

    async def load() -> library_pb2.GetScriptResponse:
        nonlocal loads
        loads += 1
        return _answer(10)

    for _ in range(3):
        await cache.read("GetScript", library_pb2.GetScriptRequest(id="a"), load)
    assert loads == 3


async def test_the_sqlite_stamp_moves_with_a_commit_on_another_connection(tmp_path) -> None:
    path = str(tmp_path / "x.db")
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (v INTEGER)")
    writer.commit()
    stamp = SqliteDataVersion(path)
    try:
        before = await stamp.current()
        assert await stamp.current() == before  # nothing committed: unchanged
        writer.execute("INSERT INTO t VALUES (1)")
        writer.commit()
        assert await stamp.current() != before
    finally:
        await stamp.close()
        writer.close()


async def test_concurrent_postgres_readers_each_get_a_stamp_taken_after_they_asked(
    postgres_url,
) -> None:
    engine = create_async_engine(postgres_url)
    stamp = PostgresSnapshotStamp(engine)
    writer = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    try:
        await writer.execute("CREATE TABLE t (v integer)")
        before = await asyncio.gather(*(stamp.current() for _ in range(20)))
        assert len(set(before)) == 1 and before[0] is not None
        await writer.execute("INSERT INTO t VALUES (1)")
        after = await asyncio.gather(*(stamp.current() for _ in range(20)))
        assert before[0] not in after
    finally:
        await writer.close()
        await stamp.close()
        await engine.dispose()
