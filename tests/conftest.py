"""Fixtures shared by every test: real databases and real in-process servers.

PostgreSQL is required, never skipped: when it cannot be reached the tests that need it
fail with a message saying how to start it. Each test gets a database of its own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import pytest

# The helper modules hold asserts; pytest rewrites those only in test_*.py files unless
# told, and a failing helper should explain itself as well as a test does.
pytest.register_assert_rewrite(
    "tests.e2e.cli_support",
    "tests.e2e.templates_run_support",
    "tests.patience",
    "tests.service.assignments_support",
    "tests.service.executor_support",
    "tests.service.roles_support",
    "tests.service.scripts_support",
)

from library_service.app import LibraryApp, start_library
from library_service.context import LibraryContext
from library_service.maintenance.framework.store import open_database
from shared.settings import Settings
from shared.stubs import library_pb2_grpc
from tests.service.executor_support import ExecutorHandle, open_executor

POSTGRES_ADMIN_DSN = os.environ.get(
    "HOOKSHELF_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgres"]


async def _admin_connection() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=10)
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(
            f"PostgreSQL is required at {POSTGRES_ADMIN_DSN} and could not be reached "
            f"({error}); `make test` starts it, or run: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
            pytrace=False,
        )


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"hs_test_{uuid.uuid4().hex[:12]}"
    admin = await _admin_connection()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    admin = await _admin_connection()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def library_settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        library_listen="127.0.0.1:0",
        log_format="console",
        # An empty library: tests of other areas count scripts. The template tests
        # (tests/service/test_templates_*.py) start their library with templates.
        install_templates=False,
    )


@dataclass
class LibraryHandle:
    """A real library server on a real port, and a stub talking to it."""

    app: LibraryApp
    channel: grpc.aio.Channel
    stub: library_pb2_grpc.ScriptLibraryServiceStub

    @property
    def address(self) -> str:
        return self.app.address

    @property
    def data_dir(self) -> Path:
        return self.app.context.settings.data_dir


@asynccontextmanager
async def open_library(settings: Settings) -> AsyncIterator[LibraryHandle]:
    """A real library server with these settings, stopped on exit."""
    app = await start_library(settings)
    channel = grpc.aio.insecure_channel(app.address)
    try:
        yield LibraryHandle(app, channel, library_pb2_grpc.ScriptLibraryServiceStub(channel))
    finally:
        await channel.close()
        await app.stop(0)


@pytest.fixture
async def library(library_settings: Settings) -> AsyncIterator[LibraryHandle]:
    async with open_library(library_settings) as handle:
        yield handle


@pytest.fixture
def short_socket_dir() -> Iterator[Path]:
    """Unix socket paths must stay under ~100 characters: tmp_path is too deep."""
    path = Path(tempfile.mkdtemp(prefix="hs-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def executor(
    library, tmp_path: Path, short_socket_dir: Path
) -> AsyncIterator[ExecutorHandle]:
    handle = await open_executor(library, tmp_path, short_socket_dir)
    try:
        yield handle
    finally:
        await handle.channel.close()
        await handle.app.stop(0)


@pytest.fixture
async def ctx(database_url: str, tmp_path: Path) -> AsyncIterator[LibraryContext]:
    """The library's domain context on a migrated database, without a server: for
    maintenance scripts and other domain code driven directly."""
    db = await open_database(database_url)
    try:
        yield LibraryContext(settings=Settings(data_dir=tmp_path / "data"), database=db)
    finally:
        await db.close()
