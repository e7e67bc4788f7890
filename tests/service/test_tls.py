"""TLS and mutual TLS on a real in-process library, with real handshakes and real
certificates made per test: who gets in, who does not, and rotation without a restart.

SQLite only: the transport does not depend on the database.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from library_service.app import LibraryApp, start_library
from shared.client import HookshelfCallError, LibraryClient
from shared.client.tls import ClientTls
from shared.settings import Settings
from shared.stubs import library_pb2 as pb
from tests.tls_certs import Authority, Pki, make_pki

DEADLINE = 30.0


def settings(tmp_path: Path, pki: Pki, *, mutual: bool, **more: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'library.db'}",
        "library_listen": "127.0.0.1:0",
        "library_health_listen": "127.0.0.1:0",
        "log_format": "console",
        "install_templates": False,
        "tls_cert_file": str(pki.server_cert),
        "tls_key_file": str(pki.server_key),
        "tls_client_ca_file": str(pki.ca_file) if mutual else "",
    }
    return Settings(**{**values, **more})  # type: ignore[arg-type]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
async def tls_library(tmp_path: Path, pki: Pki) -> AsyncIterator[LibraryApp]:
    app = await start_library(settings(tmp_path, pki, mutual=False))
    yield app
    await app.stop(0)


@pytest.fixture
async def mtls_library(tmp_path: Path, pki: Pki) -> AsyncIterator[LibraryApp]:
    app = await start_library(settings(tmp_path, pki, mutual=True))
    yield app
    await app.stop(0)


async def health(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=10
    )
    return reply.status


async def refused(channel: grpc.aio.Channel) -> grpc.StatusCode:
    """The code of a health check that must fail (the handshake does)."""
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health(channel)
    return caught.value.code()


def secure(address: str, pki: Pki, *, cert: bytes | None = None, key: bytes | None = None):
    credentials = grpc.ssl_channel_credentials(pki.ca.pem, key, cert)
    return grpc.aio.secure_channel(address, credentials)


def served_certificate(address: str, pki: Pki) -> x509.Certificate:
    """The certificate a new TLS connection is shown, read by Python's own ssl module."""
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    context.load_cert_chain(pki.client_cert, pki.client_key)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


async def test_tls_serves_a_client_that_trusts_the_ca_and_refuses_plaintext(
    tls_library: LibraryApp, pki: Pki
) -> None:
    async with LibraryClient(tls_library.address, tls=ClientTls(ca_file=str(pki.ca_file))) as c:
        await c.create_script(pb.CreateScriptRequest(script=pb.Script(name="s", content="x")))
        names = [s.name for s in (await c.list_scripts(pb.ListScriptsRequest())).scripts]
    assert names == ["s"]
    assert await refused(grpc.aio.insecure_channel(tls_library.address)) == (
        grpc.StatusCode.UNAVAILABLE
    )
    # A client trusting another CA does not accept the server's certificate.
    other = Authority("Someone Else")
    bad = grpc.ssl_channel_credentials(other.pem)
    assert await refused(grpc.aio.secure_channel(tls_library.address, bad)) == (
        grpc.StatusCode.UNAVAILABLE
    )


async def test_the_health_port_stays_plaintext_for_probes(tls_library: LibraryApp) -> None:
    async with grpc.aio.insecure_channel(tls_library.running.health_address) as channel:
        assert await health(channel) == health_pb2.HealthCheckResponse.SERVING


async def test_mutual_tls_needs_a_valid_client_certificate_from_the_client_ca(
    mtls_library: LibraryApp, pki: Pki, tmp_path: Path
) -> None:
    address = mtls_library.address
    good = secure(address, pki, cert=pki.client.cert_pem, key=pki.client.key_pem)
    async with good:
        assert await health(good) == health_pb2.HealthCheckResponse.SERVING

    assert await refused(secure(address, pki)) == grpc.StatusCode.UNAVAILABLE  # no certificate
    stranger = Authority("Another CA").issue("intruder", server=False)
    assert await refused(secure(address, pki, cert=stranger.cert_pem, key=stranger.key_pem)) == (
        grpc.StatusCode.UNAVAILABLE
    )
    expired = pki.ca.issue("executor", server=False, expired=True)
    assert await refused(secure(address, pki, cert=expired.cert_pem, key=expired.key_pem)) == (
        grpc.StatusCode.UNAVAILABLE
    )


async def test_an_expired_server_certificate_fails_the_handshake(tmp_path: Path, pki: Pki) -> None:
    pki.ca.issue("library.test", expired=True).write(tmp_path / "pki", "server")
    app = await start_library(settings(tmp_path, pki, mutual=False))
    try:
        assert await refused(secure(app.address, pki)) == grpc.StatusCode.UNAVAILABLE
    finally:
        await app.stop(0)


def kubernetes_secret(directory: Path, pki: Pki) -> tuple[Path, Path]:
    """The layout a mounted Secret has: tls.crt → ..data/tls.crt, ..data → a timestamped
    directory that the kubelet swaps atomically on update."""
    first = directory / "..2024_01_01"
    pki.server.write(first, "tls")
    (directory / "..data").symlink_to(first.name)
    for name in ("tls.crt", "tls.key"):
        (directory / name).symlink_to(f"..data/{name}")
    return directory / "tls.crt", directory / "tls.key"


def swap_secret(directory: Path, issued, generation: int) -> None:
    fresh = directory / f"..2024_01_0{generation + 1}"
    issued.write(fresh, "tls")
    (directory / "..data_tmp").symlink_to(fresh.name)
    os.replace(directory / "..data_tmp", directory / "..data")


async def test_a_rotated_server_certificate_is_served_without_a_failed_call(
    tmp_path: Path, pki: Pki
) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    cert, key = kubernetes_secret(secret, pki)
    app = await start_library(
        settings(tmp_path, pki, mutual=True, tls_cert_file=str(cert), tls_key_file=str(key))
    )
    client_tls = ClientTls(str(pki.ca_file), str(pki.client_cert), str(pki.client_key))
    failures: list[str] = []
    calls = {"kept channel": 0, "new channel": 0}
    stop = asyncio.Event()

    async def on_one_channel() -> None:
        async with LibraryClient(app.address, tls=client_tls) as client:
            while not stop.is_set():
                try:
                    await client.list_scripts(pb.ListScriptsRequest())
                    calls["kept channel"] += 1
                except HookshelfCallError as error:
                    failures.append(f"kept channel: {error}")

    async def a_new_channel_each_call() -> None:
        # Every call a new connection, so a new handshake, while the files change.
        while not stop.is_set():
            try:
                async with LibraryClient(app.address, tls=client_tls) as client:
                    await client.list_scripts(pb.ListScriptsRequest())
                calls["new channel"] += 1
            except HookshelfCallError as error:
                failures.append(f"new channel: {error}")

    async def served_serial() -> int:
        served = await asyncio.to_thread(served_certificate, app.address, pki)
        return served.serial_number

    load = [asyncio.create_task(on_one_channel()), asyncio.create_task(a_new_channel_each_call())]
    try:
        assert await served_serial() == pki.server.serial
        for generation in range(1, 5):
            issued = pki.ca.issue(f"library.test generation {generation}")
            if generation % 2:
                swap_secret(secret, issued, generation)  # the kubelet's atomic swap
            else:
                # In place, one file after the other: for a moment the new key sits next
                # to the old certificate; that pair is refused and the old one served.
                current = secret / os.readlink(secret / "..data")
                (current / "tls.key").write_bytes(issued.key_pem)
                await asyncio.sleep(0.05)  # let handshakes happen in between
                (current / "tls.crt").write_bytes(issued.cert_pem)
            deadline = time.monotonic() + DEADLINE
            while await served_serial() != issued.serial:
                assert time.monotonic() < deadline, f"generation {generation} never served"
                await asyncio.sleep(0.1)
            served = await asyncio.to_thread(served_certificate, app.address, pki)
            assert served.subject.rfc4514_string() == f"CN=library.test generation {generation}"
    finally:
        stop.set()
        await asyncio.gather(*load)
        await app.stop(0)
    assert failures == []
    assert calls["kept channel"] > 0 and calls["new channel"] > 0, calls


async def test_a_client_picks_up_its_rotated_certificate(
    mtls_library: LibraryApp, pki: Pki, tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    pki.ca.issue("executor", server=False, expired=True).write(mine, "client")
    tls = ClientTls(str(pki.ca_file), str(mine / "client.crt"), str(mine / "client.key"))
    async with LibraryClient(mtls_library.address, tls=tls, tls_check_seconds=0) as client:
        with pytest.raises(HookshelfCallError) as caught:
            await client.list_scripts(pb.ListScriptsRequest())
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        # Renewed in place, as cert-manager does: the next call presents the new one.
        pki.ca.issue("executor", server=False).write(mine, "client")
        reply = await client.list_scripts(pb.ListScriptsRequest())
    assert list(reply.scripts) == []
