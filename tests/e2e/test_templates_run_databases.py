"""The dump templates run for real with bash: postgres-dump against the running
PostgreSQL, mysql-dump against the running MariaDB, sqlite-dump on a live file. Each dump
is restored into a fresh database and compared row by row with the original."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.conftest import POSTGRES_ADMIN_DSN
from tests.e2e.templates_run_support import StandIn, run_template

PG = urlsplit(POSTGRES_ADMIN_DSN)
MYSQL = {
    "MYSQL_HOST": os.environ.get("HOOKSHELF_TEST_MYSQL_HOST", "127.0.0.1"),
    "MYSQL_PORT": os.environ.get("HOOKSHELF_TEST_MYSQL_PORT", "3306"),
    "MYSQL_USER": os.environ.get("HOOKSHELF_TEST_MYSQL_USER", "root"),
    "MYSQL_PASSWORD": os.environ.get("HOOKSHELF_TEST_MYSQL_PASSWORD", ""),
}
ROWS = [(1, "plain"), (2, "ünïcødé ✓"), (3, None), (4, 'it\'s "quoted"; DROP TABLE x')]


def pg_parameters(database: str, dump_file: Path, **more: str) -> dict[str, str]:
    return {
        "POSTGRES_DATABASE": database,
        "POSTGRES_HOST": PG.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(PG.port or 5432),
        "POSTGRES_USER": PG.username or "postgres",
        "POSTGRES_PASSWORD": PG.password or "",
        "DUMP_FILE": str(dump_file),
        **more,
    }


async def _pg_admin() -> asyncpg.Connection:
    return await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=10)


@pytest.fixture
async def pg_databases() -> AsyncIterator[list[str]]:
    """Names handed out by `new_pg_database`, dropped afterwards."""
    names: list[str] = []
    yield names
    admin = await _pg_admin()
    try:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def new_pg_database(names: list[str]) -> str:
    name = f"hs_tpl_{uuid.uuid4().hex[:12]}"
    admin = await _pg_admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    names.append(name)
    return name


def pg_dsn(database: str) -> str:
    return POSTGRES_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}"


async def pg_rows(database: str) -> list[tuple[object, ...]]:
    connection = await asyncpg.connect(pg_dsn(database))
    try:
        return [tuple(r) for r in await connection.fetch("SELECT id, note FROM notes ORDER BY id")]
    finally:
        await connection.close()


async def pg_source(names: list[str]) -> str:
    database = await new_pg_database(names)
    connection = await asyncpg.connect(pg_dsn(database))
    try:
        await connection.execute("CREATE TABLE notes (id integer PRIMARY KEY, note text)")
        await connection.executemany("INSERT INTO notes VALUES ($1, $2)", ROWS)
    finally:
        await connection.close()
    return database


@pytest.mark.parametrize("dump_format", ["custom", "plain"])
async def test_postgres_dump_restores_into_a_fresh_database(
    pg_databases: list[str], tmp_path: Path, dump_format: str
) -> None:
    source = await pg_source(pg_databases)
    dump_file = tmp_path / "dumps" / f"{source}.dump"
    ran = run_template(
        "postgres-dump", pg_parameters(source, dump_file, DUMP_FORMAT=dump_format), home=tmp_path
    )
    assert ran.returncode == 0, ran.stderr
    assert f"wrote {dump_file}" in ran.stdout
    assert dump_file.stat().st_mode & 0o077 == 0  # a dump is data: owner only
    assert list(dump_file.parent.iterdir()) == [dump_file]  # no partial file left

    target = await new_pg_database(pg_databases)
    restore = (
        ["pg_restore", "--no-owner", "--dbname", pg_dsn(target), str(dump_file)]
        if dump_format == "custom"
        else [
            "psql",
            "--quiet",
            "--set",
            "ON_ERROR_STOP=1",
            "--file",
            str(dump_file),
            pg_dsn(target),
        ]
    )
    await asyncio.to_thread(subprocess.run, restore, check=True, capture_output=True, timeout=60)
    assert await pg_rows(target) == await pg_rows(source) == [tuple(r) for r in ROWS]


async def test_postgres_dump_of_a_missing_database_fails_and_keeps_the_old_dump(
    tmp_path: Path,
) -> None:
    dump_file = tmp_path / "postgres.dump"
    dump_file.write_text("yesterday's dump")
    ran = run_template(
        "postgres-dump",
        pg_parameters(f"hs_missing_{uuid.uuid4().hex[:8]}", dump_file),
        home=tmp_path,
    )
    assert ran.returncode != 0 and "does not exist" in ran.stderr
    assert dump_file.read_text() == "yesterday's dump"
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []


def test_postgres_password_travels_in_the_environment_only(tmp_path: Path) -> None:
    pg_dump = StandIn(tmp_path / "bin", "pg_dump", report_env=("PGPASSWORD",), stdout="dump")
    ran = run_template(
        "postgres-dump",
        pg_parameters(
            "app",
            tmp_path / "app.dump",
            POSTGRES_PASSWORD="s3cret pass",
            PG_DUMP_OPTIONS="--exclude-table=logs",
        ),
        home=tmp_path,
        path_first=[tmp_path / "bin"],
    )
    assert ran.returncode == 0, ran.stderr
    [call] = pg_dump.entries()
    assert call["env"] == {"PGPASSWORD": "s3cret pass"}
    assert not any("s3cret" in arg for arg in call["argv"])
    assert "--no-password" in call["argv"] and "--exclude-table=logs" in call["argv"]
    assert call["argv"][-1] == "--dbname=app"
    assert (tmp_path / "app.dump").read_text() == "dump"


def test_postgres_dump_refuses_an_unknown_format(tmp_path: Path) -> None:
    ran = run_template(
        "postgres-dump", pg_parameters("app", tmp_path / "x", DUMP_FORMAT="tar"), home=tmp_path
    )
    assert ran.returncode == 2 and "DUMP_FORMAT must be" in ran.stderr


# --- MySQL / MariaDB -------------------------------------------------------------------


def mysql(*sql: str, database: str = "", stdin: Path | None = None) -> str:
    command = [
        "mariadb",
        f"--host={MYSQL['MYSQL_HOST']}",
        f"--port={MYSQL['MYSQL_PORT']}",
        f"--user={MYSQL['MYSQL_USER']}",
        "--batch",
        "--skip-column-names",
    ]
    if database:
        command.append(database)
    env = {**os.environ, "MYSQL_PWD": MYSQL["MYSQL_PASSWORD"]}
    if sql:
        command += ["-e", "; ".join(sql)]
    try:
        with stdin.open("rb") if stdin else open(os.devnull, "rb") as source:
            result = subprocess.run(
                command, env=env, stdin=source, capture_output=True, timeout=60, check=False
            )
    except FileNotFoundError:
        pytest.fail("the mariadb client is required: apt-get install mariadb-client", pytrace=False)
    if result.returncode != 0:
        pytest.fail(
            f"MariaDB is required at {MYSQL['MYSQL_HOST']}:{MYSQL['MYSQL_PORT']} "
            f"(HOOKSHELF_TEST_MYSQL_*): {result.stderr.decode()}",
            pytrace=False,
        )
    return result.stdout.decode()


@pytest.fixture
def mysql_database() -> Iterator[str]:
    name = f"hs_tpl_{uuid.uuid4().hex[:12]}"
    mysql(
        f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4",
        f"CREATE TABLE `{name}`.notes (id INT PRIMARY KEY, note TEXT)",
        f"INSERT INTO `{name}`.notes VALUES "
        + ", ".join(f"({i}, {'NULL' if n is None else repr_sql(n)})" for i, n in ROWS),
    )
    yield name
    mysql(f"DROP DATABASE IF EXISTS `{name}`")


def repr_sql(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def mysql_rows(database: str) -> str:
    return mysql("SELECT id, note FROM notes ORDER BY id", database=database)


def test_mysql_dump_restores_the_database(mysql_database: str, tmp_path: Path) -> None:
    before = mysql_rows(mysql_database)
    assert "ünïcødé ✓" in before and "NULL" in before
    dump_file = tmp_path / "dumps" / "mysql.sql"
    ran = run_template(
        "mysql-dump",
        {**MYSQL, "MYSQL_DATABASES": mysql_database, "DUMP_FILE": str(dump_file)},
        home=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    assert dump_file.stat().st_mode & 0o077 == 0
    assert list(dump_file.parent.iterdir()) == [dump_file]

    mysql(f"DROP DATABASE `{mysql_database}`")
    mysql(stdin=dump_file)  # the dump creates its database
    assert mysql_rows(mysql_database) == before


def test_mysql_password_travels_in_the_environment_only(tmp_path: Path) -> None:
    dump = StandIn(tmp_path / "bin", "mariadb-dump", report_env=("MYSQL_PWD",), stdout="-- dump")
    ran = run_template(
        "mysql-dump",
        {
            **MYSQL,
            "MYSQL_PASSWORD": "s3cret",
            "MYSQL_DATABASES": "app shop",
            "DUMP_FILE": str(tmp_path / "mysql.sql"),
        },
        home=tmp_path,
        path_first=[tmp_path / "bin"],
    )
    assert ran.returncode == 0, ran.stderr
    [call] = dump.entries()
    assert call["env"] == {"MYSQL_PWD": "s3cret"}
    assert not any("s3cret" in arg for arg in call["argv"])
    assert call["argv"][-3:] == ["--databases", "app", "shop"]
    assert "--single-transaction" in call["argv"]


def test_mysql_dump_of_everything_by_default_with_a_custom_command(tmp_path: Path) -> None:
    dump = StandIn(tmp_path / "bin", "mysqldump8")
    ran = run_template(
        "mysql-dump",
        {
            "MYSQL_DUMP_COMMAND": "mysqldump8 --column-statistics=0",
            "DUMP_FILE": str(tmp_path / "all.sql"),
        },
        home=tmp_path,
        path_first=[tmp_path / "bin"],
    )
    assert ran.returncode == 0, ran.stderr
    [argv] = dump.calls()
    assert argv[0] == "--column-statistics=0" and argv[-1] == "--all-databases"
    assert "--host=127.0.0.1" in argv and "--user=root" in argv


# --- SQLite ----------------------------------------------------------------------------


def sqlite_source(tmp_path: Path) -> Path:
    path = tmp_path / "app data" / "app's.db"  # spaces and a quote: paths are quoted
    path.parent.mkdir()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")  # live: part of the data is in the WAL
    connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, note TEXT)")
    connection.executemany("INSERT INTO notes VALUES (?, ?)", ROWS)
    connection.commit()
    connection.close()
    return path


def sqlite_rows(path: Path) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT id, note FROM notes ORDER BY id").fetchall()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "sqlite3_command", ["sqlite3", "/nonexistent/sqlite3"], ids=["sqlite3-shell", "python-fallback"]
)
@pytest.mark.parametrize("mode", ["backup", "sql"])
def test_sqlite_dump_copies_a_live_database(
    tmp_path: Path, mode: str, sqlite3_command: str
) -> None:
    source = sqlite_source(tmp_path)
    dump_file = tmp_path / "dumps" / "copy"
    ran = run_template(
        "sqlite-dump",
        {
            "SQLITE_DATABASE": str(source),
            "DUMP_FILE": str(dump_file),
            "DUMP_MODE": mode,
            "SQLITE3": sqlite3_command,
        },
        home=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    assert list(dump_file.parent.iterdir()) == [dump_file]
    if mode == "sql":
        restored = tmp_path / "restored.db"
        connection = sqlite3.connect(restored)
        connection.executescript(dump_file.read_text())
        connection.close()
    else:
        restored = dump_file
    assert sqlite_rows(restored) == sqlite_rows(source) == [tuple(r) for r in ROWS]


def test_sqlite_dump_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    ran = run_template(
        "sqlite-dump",
        {"SQLITE_DATABASE": str(missing), "DUMP_FILE": str(tmp_path / "copy")},
        home=tmp_path,
    )
    assert ran.returncode == 1 and "is not a readable file" in ran.stderr
    assert not missing.exists() and not (tmp_path / "copy").exists()
