"""`python -m library_service` as an operator runs it: a real process configured only by
HOOKSHELF_* variables. It becomes healthy, logs JSON lines that carry the request id,
drains on SIGTERM (an in-flight call completes, new ones are refused, health says
NOT_SERVING, exit 0 within the grace) and refuses to start on a port that is taken.

An in-flight call is made slow the way it happens in production: the database is locked
by someone else (an exclusive SQLite transaction, or a PostgreSQL table lock).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import pytest
from cryptography.fernet import Fernet
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.stubs import library_pb2, library_pb2_grpc
from tests.patience import eventually

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60
GRACE_SECONDS = 8.0


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LibraryProcess:
    process: subprocess.Popen[bytes]
    address: str
    health_address: str
    log_path: Path

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def json_log(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log_lines() if line.startswith("{")]

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)


def spawn(tmp_path: Path, database_url: str, **env: str) -> LibraryProcess:
    """Start the service with a clean HOOKSHELF_* environment (plus env)."""
    address = f"127.0.0.1:{free_port()}"
    health_address = f"127.0.0.1:{free_port()}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSHELF_")}
    base.update(
        HOOKSHELF_DATA_DIR=str(tmp_path / "data"),
        HOOKSHELF_DATABASE_URL=database_url,
        HOOKSHELF_LIBRARY_LISTEN=address,
        HOOKSHELF_LIBRARY_HEALTH_LISTEN=health_address,
        HOOKSHELF_LOG_FORMAT="json",
        HOOKSHELF_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
        PYTHONUNBUFFERED="1",
    )
    base.update(env)
    log_path = tmp_path / f"library-{uuid.uuid4().hex[:6]}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "library_service"],
            cwd=tmp_path,
            env=base,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return LibraryProcess(
        process, base["HOOKSHELF_LIBRARY_LISTEN"], base["HOOKSHELF_LIBRARY_HEALTH_LISTEN"], log_path
    )


async def exit_status(library: LibraryProcess, timeout: float) -> int:
    """The process's exit status; fails with its last log lines if it is still running."""
    try:
        return await asyncio.to_thread(library.wait, timeout)
    except subprocess.TimeoutExpired:
        library.process.kill()
        library.process.wait()
        pytest.fail(
            f"still running {timeout:.0f}s after SIGTERM; its last log lines:\n"
            + "\n".join(library.log_lines()[-15:])
        )


async def health(address: str, timeout: float = 2) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=timeout
        )
        return response.status


async def _not_serving(library: LibraryProcess) -> bool:
    try:
        status = await health(library.health_address)
    except grpc.aio.AioRpcError:
        return False
    return status == health_pb2.HealthCheckResponse.NOT_SERVING


async def wait_serving(library: LibraryProcess) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if library.process.poll() is not None:
            pytest.fail(
                f"library exited with {library.process.returncode} before serving:\n"
                + "\n".join(library.log_lines()[-30:])
            )
        try:
            if await health(library.health_address, timeout=1) == (
                health_pb2.HealthCheckResponse.SERVING
            ):
                return
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.1)
    pytest.fail("library did not become healthy:\n" + "\n".join(library.log_lines()[-30:]))


@asynccontextmanager
async def running(tmp_path: Path, database_url: str, **env: str) -> AsyncIterator[LibraryProcess]:
    library = spawn(tmp_path, database_url, **env)
    try:
        await wait_serving(library)
        yield library
    finally:
        if library.process.poll() is None:
            library.process.kill()
            library.process.wait(timeout=10)


def port_is_closed(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with closing(socket.socket()) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) != 0


def new_script(name: str) -> library_pb2.Script:
    return library_pb2.Script(
        name=name, description="e2e", category="test", content="#!/bin/sh\necho hello\n"
    )


@asynccontextmanager
async def database_locked(database_url: str) -> AsyncIterator[None]:
    """Hold a lock that makes the library's writes wait, as a busy database would."""
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(database_url.split("///", 1)[1], isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
    else:
        connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute(
            "LOCK TABLE scripts, script_contents, script_versions IN ACCESS EXCLUSIVE MODE"
        )
        try:
            yield
        finally:
            await transaction.rollback()
            await connection.close()


# --- tests ----------------------------------------------------------------------------


async def test_starts_healthy_and_logs_json_with_the_request_id(
    tmp_path: Path, database_url: str
) -> None:
    request_id = f"e2e-{uuid.uuid4().hex}"
    async with running(tmp_path, database_url) as library:
        assert await health(library.address) == health_pb2.HealthCheckResponse.SERVING
        async with grpc.aio.insecure_channel(library.address) as channel:
            stub = library_pb2_grpc.ScriptLibraryServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetScript(
                    library_pb2.GetScriptRequest(id=str(uuid.uuid4())),
                    metadata=(("x-request-id", request_id),),
                    timeout=10,
                )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        await eventually(  # the line reaches the file when the process gets to it
            lambda: any(request_id in line for line in library.log_lines()),
            f"a log line with request_id {request_id}",
        )
        lines = library.log_lines()

    not_json = [line for line in lines if not line.startswith("{")]
    assert not not_json, f"every log line should be JSON; these are not: {not_json[:5]}"
    events = [json.loads(line) for line in lines]
    assert all("event" in e and "level" in e and "timestamp" in e for e in events)
    tagged = [e for e in events if e.get("request_id") == request_id]
    assert tagged, f"no log line carries request_id {request_id}: {events[-5:]}"


async def test_sigterm_lets_an_in_flight_call_finish_then_exits_zero(
    tmp_path: Path, database_url: str
) -> None:
    # A grace no busy machine outlasts: the call must finish because it is let, not
    # because it happened to be quick enough.
    grace = 60.0
    async with running(
        tmp_path, database_url, HOOKSHELF_SHUTDOWN_GRACE_SECONDS=str(grace)
    ) as library:
        async with grpc.aio.insecure_channel(library.address) as channel:
            stub = library_pb2_grpc.ScriptLibraryServiceStub(channel)
            async with database_locked(database_url):
                in_flight = asyncio.ensure_future(
                    stub.CreateScript(
                        library_pb2.CreateScriptRequest(script=new_script("drained")),
                        timeout=90,
                    )
                )
                await asyncio.sleep(1.0)
                assert not in_flight.done(), "the call should be waiting for the database"

                library.process.send_signal(signal.SIGTERM)
                # Probes see the drain as soon as the process handles the signal (on a
                # busy machine that is not within any fixed time); new calls are refused.
                await eventually(lambda: _not_serving(library), "health NOT_SERVING after SIGTERM")
                assert library.process.poll() is None, "exited before draining"
                async with grpc.aio.insecure_channel(library.address) as fresh:
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await library_pb2_grpc.ScriptLibraryServiceStub(fresh).ListScripts(
                            library_pb2.ListScriptsRequest(), timeout=3
                        )
                    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            # The lock is gone: the in-flight call completes normally.
            created = await asyncio.wait_for(in_flight, timeout=grace)
            assert created.script.name == "drained"

        status = await exit_status(library, grace + 10)
        assert status == 0, "\n".join(library.log_lines()[-20:])
        assert port_is_closed(library.address)
        assert port_is_closed(library.health_address)
        events = [e["event"] for e in library.json_log()]
        assert "server.draining" in events and "server.stopped" in events


async def test_sigterm_with_nothing_in_flight_exits_zero_promptly(
    tmp_path: Path, database_url: str
) -> None:
    # A long grace, so that "did not wait for it" holds on a machine of any speed.
    grace = 60.0
    async with running(
        tmp_path, database_url, HOOKSHELF_SHUTDOWN_GRACE_SECONDS=str(grace)
    ) as library:
        started = time.monotonic()
        library.process.send_signal(signal.SIGTERM)
        status = await exit_status(library, grace + 10)
        elapsed = time.monotonic() - started
    assert status == 0, "\n".join(library.log_lines()[-20:])
    assert elapsed < grace, f"an idle server took {elapsed:.1f}s to stop"
    assert port_is_closed(library.address)
    assert port_is_closed(library.health_address)


async def test_a_call_outliving_the_grace_is_cut_and_the_process_still_exits(
    tmp_path: Path, database_url: str
) -> None:
    grace = 1.0
    async with (
        running(tmp_path, database_url, HOOKSHELF_SHUTDOWN_GRACE_SECONDS=str(grace)) as library,
        grpc.aio.insecure_channel(library.address) as channel,
    ):
        stub = library_pb2_grpc.ScriptLibraryServiceStub(channel)
        async with database_locked(database_url):
            stuck = asyncio.ensure_future(
                stub.CreateScript(
                    library_pb2.CreateScriptRequest(script=new_script("stuck")), timeout=60
                )
            )
            await asyncio.sleep(1.0)
            assert not stuck.done(), "the call should be waiting for the database"
            started = time.monotonic()
            library.process.send_signal(signal.SIGTERM)
            status = await exit_status(library, grace + 60)
            elapsed = time.monotonic() - started
            with pytest.raises(grpc.aio.AioRpcError):
                await stuck
    assert status == 0, "\n".join(library.log_lines()[-20:])
    # Cut at the grace: well before the call could give up by itself (SQLite's 30 s busy
    # timeout; on PostgreSQL it would wait for the lock as long as the test holds it).
    assert elapsed < grace + 20, f"took {elapsed:.1f}s to exit with a {grace}s grace"


def _hold_port(address: str) -> socket.socket:
    """Listen on address with SO_REUSEPORT set, so only so_reuseport=0 on the server
    side keeps the two from silently sharing the port."""
    host, port = address.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, int(port)))
    sock.listen()
    return sock


@pytest.mark.parametrize("which", ["HOOKSHELF_LIBRARY_LISTEN", "HOOKSHELF_LIBRARY_HEALTH_LISTEN"])
async def test_a_taken_port_fails_loudly(tmp_path: Path, which: str) -> None:
    taken = f"127.0.0.1:{free_port()}"
    holder = _hold_port(taken)
    try:
        library = spawn(
            tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'library.db'}", **{which: taken}
        )
        try:
            status = await asyncio.to_thread(library.wait, STARTUP_SECONDS)
        except subprocess.TimeoutExpired:
            library.process.kill()
            library.process.wait()
            pytest.fail(f"the library kept running although {taken} was taken")
    finally:
        holder.close()
    assert status != 0
    output = "\n".join(library.log_lines())
    assert taken in output, f"the error should name the address:\n{output[-2000:]}"


def test_an_unusable_secret_key_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOOKSHELF_DATA_DIR": str(tmp_path / "data"),
        "HOOKSHELF_LIBRARY_LISTEN": "127.0.0.1:0",
        "HOOKSHELF_SECRET_KEY": "not-a-fernet-key",
    }
    done = subprocess.run(
        [sys.executable, "-m", "library_service"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    last = json.loads(done.stderr.strip().splitlines()[-1])
    assert last["event"] == "library.secret_key_unusable"
    assert "HOOKSHELF_SECRET_KEY" in last["error"]
    assert "not-a-fernet-key" not in done.stderr  # the key itself is never echoed


async def test_the_database_url_and_the_key_may_come_from_files(
    tmp_path: Path, postgres_url: str
) -> None:
    """As a Kubernetes Secret mounted as files hands them over: HOOKSHELF_DATABASE_URL_FILE
    and HOOKSHELF_SECRET_KEY_FILE, each with a trailing newline."""
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "database-url").write_text(postgres_url + "\n")
    (secrets_dir / "secret-key").write_text(Fernet.generate_key().decode() + "\n")
    async with running(
        tmp_path,
        "",  # HOOKSHELF_DATABASE_URL empty: unset
        HOOKSHELF_DATABASE_URL_FILE=str(secrets_dir / "database-url"),
        HOOKSHELF_SECRET_KEY_FILE=str(secrets_dir / "secret-key"),
    ) as library:
        async with grpc.aio.insecure_channel(library.address) as channel:
            stub = library_pb2_grpc.ScriptLibraryServiceStub(channel)
            await stub.CreateScript(
                library_pb2.CreateScriptRequest(script=new_script("from-a-file")), timeout=30
            )
            listed = await stub.ListScripts(library_pb2.ListScriptsRequest(), timeout=30)
        assert "from-a-file" in [s.name for s in listed.scripts]
        key_source = [e for e in library.json_log() if e.get("event") == "secrets.key_loaded"][-1][
            "source"
        ]

    # The script is in that PostgreSQL database, not in a SQLite file of the library's own.
    connection = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    try:
        names = [r["name"] for r in await connection.fetch("SELECT name FROM scripts")]
    finally:
        await connection.close()
    assert "from-a-file" in names
    assert not (tmp_path / "data" / "library.db").exists()
    assert key_source == "HOOKSHELF_SECRET_KEY"
    assert not (tmp_path / "data" / "secret.key").exists()


@pytest.mark.parametrize("module", ["library_service", "executor_service"])
def test_a_secret_file_that_is_not_there_stops_start_up_with_one_line(
    tmp_path: Path, module: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSHELF_")}
    env["HOOKSHELF_DATABASE_URL_FILE"] = str(tmp_path / "not-mounted")
    done = subprocess.run(
        [sys.executable, "-m", module],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        f"{module.split('_')[0]}: cannot start: HOOKSHELF_DATABASE_URL_FILE="
        f"{tmp_path / 'not-mounted'}: cannot read it (No such file or directory)"
    )
