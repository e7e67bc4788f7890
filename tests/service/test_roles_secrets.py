"""Secret values leave the library only to the executor role, only over TLS, a unix
socket or loopback; everyone else sees them masked (DESIGN Stage 2 "Trust"). Real
servers with the three tokens configured, through the generated stubs."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from library_service.domain.secrets import MASK
from shared.error_details import details_of
from shared.stubs import executor_pb2, library_pb2, library_pb2_grpc
from tests.conftest import LibraryHandle, open_library
from tests.service.assignments_support import DEADLINE, PRE
from tests.service.executor_support import open_executor
from tests.service.roles_support import TOKEN_SETTINGS, metadata_for

SECRET = "s3cr3t/p@ss word"
CONTENT = '#!/bin/sh\nprintf "%s\\n" "${PASSWORD}" >> "$MARKS"\n'


async def _assign_secret(library: LibraryHandle, repository_id: str = "repo-1") -> None:
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
                hook_type=PRE,
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
