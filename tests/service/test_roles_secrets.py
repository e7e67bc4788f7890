"""Secret values leave the library only to the executor role, only over TLS, a unix
socket or loopback; everyone else sees them masked (DESIGN Stage 2 "Trust"). Real
servers with the three tokens configured, through the generated stubs; the last tests
name the caller by a client certificate over mutual TLS instead."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from library_service.domain.secrets import MASK
from shared.credentials import executor_client_token
from shared.error_details import details_of
from shared.stubs import executor_pb2, library_pb2, library_pb2_grpc
from tests.conftest import LibraryHandle, open_library
from tests.service.assignments_support import DEADLINE, POST, PRE
from tests.service.cert_roles_support import (
    CertPki,
    make_cert_pki,
    open_tls_library,
    tls_library_settings,
)
from tests.service.executor_support import open_executor
from tests.service.roles_support import TOKEN_SETTINGS, metadata_for

SECRET = "s3cr3t/p@ss word"
CONTENT = '#!/bin/sh\nprintf "%s\\n" "${PASSWORD}" >> "$MARKS"\n'


async def _assign_secret(
    library: LibraryHandle, repository_id: str = "repo-1", hook_type: int = PRE
) -> None:
    """A script with a SECRET parameter, assigned with its value, as the admin."""
    admin = metadata_for("admin")
    made = await library.stub.CreateScript(
        library_pb2.CreateScriptRequest(
            script=library_pb2.Script(
                name=f"dump-{repository_id}",
                content=CONTENT,
                parameters=[
                    library_pb2.Parameter(name="PASSWORD", type=library_pb2.PARAMETER_TYPE_SECRET)
                ],
            )
        ),
        metadata=admin,
        timeout=DEADLINE,
    )
    await library.stub.AssignScript(
        library_pb2.AssignScriptRequest(
            assignment=library_pb2.Assignment(
                repository_id=repository_id,
                script_id=made.script.id,
                hook_type=hook_type,
                enabled=True,
                parameter_values={"PASSWORD": SECRET},
            )
        ),
        metadata=admin,
        timeout=DEADLINE,
    )


async def _plan(stub, identity: str) -> library_pb2.ResolveHookPlanResponse:
    return await stub.ResolveHookPlan(
        library_pb2.ResolveHookPlanRequest(repository_id="repo-1", hook_type=PRE),
        metadata=metadata_for(identity),
        timeout=DEADLINE,
    )


@pytest.fixture
async def guarded_library(library_settings) -> AsyncIterator[LibraryHandle]:
    async with open_library(library_settings.model_copy(update=TOKEN_SETTINGS)) as handle:
        yield handle


async def test_over_loopback_the_executor_gets_the_secret_and_others_the_mask(
    guarded_library: LibraryHandle,
) -> None:
    await _assign_secret(guarded_library)
    seen = {}
    for identity in ("executor", "admin", "reader"):
        (step,) = (await _plan(guarded_library.stub, identity)).steps
        assert list(step.secret_parameter_names) == ["PASSWORD"]
        seen[identity] = step.parameter_values["PASSWORD"]
    assert seen == {"executor": SECRET, "admin": MASK, "reader": MASK}


async def test_with_only_the_admin_token_set_the_admin_gets_secrets_as_before(
    library_settings,
) -> None:
    settings = library_settings.model_copy(update={"auth_token": TOKEN_SETTINGS["auth_token"]})
    async with open_library(settings) as library:
        await _assign_secret(library)
        (step,) = (await _plan(library.stub, "admin")).steps
    assert step.parameter_values["PASSWORD"] == SECRET


def _address_others_can_reach() -> str:
    """An address of this machine that is not loopback (the route to the outside)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        address = probe.getsockname()[0]
    except OSError:
        address = ""
    finally:
        probe.close()
    if not address or address.startswith("127."):
        pytest.skip("this machine has no non-loopback IPv4 address to call over")
    return address


@asynccontextmanager
async def _channel(target: str) -> AsyncIterator[grpc.aio.Channel]:
    channel = grpc.aio.insecure_channel(target)
    try:
        yield channel
    finally:
        await channel.close()


async def test_over_the_network_without_tls_the_executor_is_refused_the_secret_saying_why(
    library_settings,
) -> None:
    address = _address_others_can_reach()
    settings = library_settings.model_copy(update={**TOKEN_SETTINGS, "library_listen": "0.0.0.0:0"})
    async with open_library(settings) as library:
        await _assign_secret(library)
        port = library.address.rsplit(":", 1)[1]
        async with _channel(f"{address}:{port}") as channel:
            stub = library_pb2_grpc.ScriptLibraryServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _plan(stub, "executor")
            (step,) = (await _plan(stub, "reader")).steps
    found = details_of(caught.value)
    assert found.code == grpc.StatusCode.FAILED_PRECONDITION
    assert found.reason == "SECRETS_NEED_SECURE_CHANNEL"
    assert "TLS, a unix socket or loopback" in found.message
    assert found.metadata["parameters"] == "PASSWORD"
    assert SECRET not in found.message
    # A reader's plan holds no secret value, so it goes over any channel.
    assert step.parameter_values["PASSWORD"] == MASK


async def test_the_executor_runs_hooks_with_the_secret_using_its_own_token(
    guarded_library: LibraryHandle, tmp_path: Path, short_socket_dir: Path
) -> None:
    await _assign_secret(guarded_library)
    executor = await open_executor(guarded_library, tmp_path, short_socket_dir, **TOKEN_SETTINGS)
    try:
        call = executor.stub.BeginBackup(
            executor_pb2.BeginBackupRequest(repository_id="repo-1", variables=executor.variables()),
            metadata=metadata_for("executor"),
            timeout=60,
        )
        events = [response.event async for response in call]
    finally:
        await executor.channel.close()
        await executor.app.stop(0)
    assert events[-1].summary.verdict == executor_pb2.VERDICT_PROCEED
    assert executor.lines() == [SECRET]


# Over mutual TLS, the caller named by its client certificate (cert_roles_support).


@pytest.fixture
def certs(tmp_path: Path) -> CertPki:
    return make_cert_pki(tmp_path / "pki")


@pytest.fixture
async def tls_library(tmp_path: Path, certs: CertPki) -> AsyncIterator[LibraryHandle]:
    settings = tls_library_settings(tmp_path, certs, **TOKEN_SETTINGS)
    async with open_tls_library(settings, certs) as handle:
        yield handle


async def _plan_with_certificate(
    library: LibraryHandle, certs: CertPki, caller: str, identity: str = "none"
) -> library_pb2.ResolveHookPlanResponse:
    """The plan asked for with ``caller``'s certificate, sending ``identity``'s header."""
    async with certs.channel(library.address, caller) as channel:
        return await _plan(library_pb2_grpc.ScriptLibraryServiceStub(channel), identity)


async def test_over_tls_the_executor_certificate_gets_the_secret_and_others_the_mask(
    tls_library: LibraryHandle, certs: CertPki
) -> None:
    await _assign_secret(tls_library)
    seen = {}
    for caller in ("executor", "admin", "reader"):
        (step,) = (await _plan_with_certificate(tls_library, certs, caller)).steps
        assert list(step.secret_parameter_names) == ["PASSWORD"]
        seen[caller] = step.parameter_values["PASSWORD"]
    assert seen == {"executor": SECRET, "admin": MASK, "reader": MASK}


async def test_a_token_beside_a_certificate_decides_alone(
    tls_library: LibraryHandle, certs: CertPki
) -> None:
    await _assign_secret(tls_library)
    # A wrong token with the executor's good certificate: refused, not the executor.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _plan_with_certificate(tls_library, certs, "executor", "wrong")
    found = details_of(caught.value)
    assert found.code == grpc.StatusCode.UNAUTHENTICATED
    assert "wrong bearer token" in found.message
    assert SECRET not in found.message
    # The reader's token with the executor's certificate: a reader, masked.
    (step,) = (await _plan_with_certificate(tls_library, certs, "executor", "reader")).steps
    assert step.parameter_values["PASSWORD"] == MASK
    # The executor's token with a certificate that maps to no role: the executor.
    (step,) = (await _plan_with_certificate(tls_library, certs, "unmapped", "executor")).steps
    assert step.parameter_values["PASSWORD"] == SECRET


async def test_the_executor_runs_post_hooks_with_the_secret_using_its_certificate_alone(
    tls_library: LibraryHandle, certs: CertPki, tmp_path: Path, short_socket_dir: Path
) -> None:
    """The executor process presents its client certificate to the library
    (HOOKSHELF_TLS_CLIENT_CERT_FILE/KEY_FILE, HOOKSHELF_TLS_CA_FILE) and has no token:
    the library names it executor by the certificate, so its post hook gets the secret
    and its records are accepted."""
    await _assign_secret(tls_library, hook_type=POST)
    executor = await open_executor(
        tls_library, tmp_path, short_socket_dir, **certs.executor_client_settings()
    )
    try:
        assert not executor_client_token(executor.settings)
        begin = await executor.begin("repo-1")
        run_id = begin[0].run_id
        end = await executor.end(run_id)
        await executor.delivered()
    finally:
        await executor.channel.close()
        await executor.app.stop(0)
    assert begin[-1].summary.verdict == executor_pb2.VERDICT_PROCEED
    assert end[-1].summary.post_chain_ran and end[-1].summary.succeeded_count == 1
    assert executor.lines() == [SECRET]
    history = await tls_library.stub.ListExecutions(
        library_pb2.ListExecutionsRequest(page_size=100), timeout=DEADLINE
    )
    assert [(e.run_id, e.hook_type, e.status) for e in history.executions] == [
        (run_id, POST, library_pb2.EXECUTION_STATUS_SUCCEEDED)
    ]


async def test_over_the_network_tls_is_the_secure_channel_the_executor_certificate_needs(
    tmp_path: Path, certs: CertPki
) -> None:
    """Not loopback: only TLS itself makes the channel secure enough for secret values."""
    address = _address_others_can_reach()
    settings = tls_library_settings(tmp_path, certs, **TOKEN_SETTINGS, library_listen="0.0.0.0:0")
    async with open_tls_library(settings, certs) as library:
        await _assign_secret(library)
        port = library.address.rsplit(":", 1)[1]
        # The server's certificate names localhost: verify that name at the other address.
        tls = dataclasses.replace(certs.client_tls("executor"), server_name="localhost")
        async with tls.channel(f"{address}:{port}") as channel:
            stub = library_pb2_grpc.ScriptLibraryServiceStub(channel)
            (step,) = (await _plan(stub, "none")).steps
    assert step.parameter_values["PASSWORD"] == SECRET
