"""What every client and operator relies on besides the RPCs themselves: reflection,
grpc.health.v1 on the API port and on the separate probe port, the request id echoed in
trailing metadata, the bearer token, and errors that carry ErrorInfo. Real servers on
port 0, through the generated stubs, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from library_service.app import SERVICE_NAME, LibraryApp, start_library
from shared.error_details import details_of
from shared.settings import Settings
from shared.stubs import library_pb2, library_pb2_grpc

TOKEN = "s3cret-token"
DEADLINE = 30


@asynccontextmanager
async def running_library(
    tmp_path: Path, database_url: str, **overrides: object
) -> AsyncIterator[LibraryApp]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        library_listen="127.0.0.1:0",
        log_format="console",
        **overrides,  # type: ignore[arg-type]
    )
    app = await start_library(settings)
    try:
        yield app
    finally:
        await app.stop(0)


@pytest.fixture
async def app(tmp_path: Path, database_url: str) -> AsyncIterator[LibraryApp]:
    """A library with a separate health port and no token."""
    async with running_library(
        tmp_path, database_url, library_health_listen="127.0.0.1:0"
    ) as running:
        yield running


@pytest.fixture
async def guarded(tmp_path: Path, database_url: str) -> AsyncIterator[LibraryApp]:
    """A library that wants a bearer token, with a separate health port."""
    async with running_library(
        tmp_path, database_url, library_health_listen="127.0.0.1:0", auth_token=TOKEN
    ) as running:
        yield running


@asynccontextmanager
async def channel_to(address: str) -> AsyncIterator[grpc.aio.Channel]:
    channel = grpc.aio.insecure_channel(address)
    try:
        yield channel
    finally:
        await channel.close()


async def health_status(address: str, service: str = "") -> int:
    async with channel_to(address) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=DEADLINE
        )
        return response.status


async def reflect(
    channel: grpc.aio.Channel, *requests: reflection_pb2.ServerReflectionRequest
) -> list[reflection_pb2.ServerReflectionResponse]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(iter(requests), timeout=DEADLINE)
    return [response async for response in call]


# --- reflection -------------------------------------------------------------------------


async def test_reflection_lists_the_library_and_health_services(app: LibraryApp) -> None:
    async with channel_to(app.address) as channel:
        (listing,) = await reflect(
            channel, reflection_pb2.ServerReflectionRequest(list_services="")
        )
    names = {s.name for s in listing.list_services_response.service}
    assert SERVICE_NAME == "hookshelf.library.v1.ScriptLibraryService"
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names


async def test_reflection_serves_the_descriptors_grpcurl_describes(app: LibraryApp) -> None:
    async with channel_to(app.address) as channel:
        (found,) = await reflect(
            channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME)
        )
    assert found.WhichOneof("message_response") == "file_descriptor_response"
    from google.protobuf import descriptor_pb2

    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in found.file_descriptor_response.file_descriptor_proto
    ]
    library_file = next(f for f in files if f.package == "hookshelf.library.v1")
    assert library_file.name == "hookshelf/library/v1/library.proto"
    methods = {m.name for s in library_file.service for m in s.method}
    assert {"CreateScript", "GetScript", "ListScripts", "ResolveHookPlan"} <= methods


# --- health -----------------------------------------------------------------------------


async def test_health_serving_on_the_api_port(app: LibraryApp) -> None:
    assert await health_status(app.address) == health_pb2.HealthCheckResponse.SERVING
    assert await health_status(app.address, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING


async def test_health_serving_on_the_separate_health_port(app: LibraryApp) -> None:
    health_address = app.running.health_address
    assert health_address and health_address != app.address
    assert await health_status(health_address) == health_pb2.HealthCheckResponse.SERVING
    assert (
        await health_status(health_address, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING
    )


async def test_health_port_serves_only_health(app: LibraryApp) -> None:
    """The probe port is for probes: the API is not reachable through it."""
    async with channel_to(app.running.health_address) as channel:
        stub = library_pb2_grpc.ScriptLibraryServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListScripts(library_pb2.ListScriptsRequest(), timeout=DEADLINE)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_health_of_an_unknown_service_is_not_found(app: LibraryApp) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health_status(app.address, "no.such.Service")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_health_reports_not_serving_once_stopping(tmp_path: Path, database_url: str) -> None:
    """During the drain the health servicer says NOT_SERVING, so probes and load
    balancers stop sending new work before the port closes."""
    async with running_library(tmp_path, database_url) as running:
        servicer = running.running.health
        await running.running.stop(0)
        response = await servicer.Check(health_pb2.HealthCheckRequest(service=""), None)
        assert response.status == health_pb2.HealthCheckResponse.NOT_SERVING


# --- request id -------------------------------------------------------------------------


async def test_request_id_is_echoed_in_trailing_metadata(app: LibraryApp) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    async with channel_to(app.address) as channel:
        stub = library_pb2_grpc.ScriptLibraryServiceStub(channel)
        call = stub.ListScripts(
            library_pb2.ListScriptsRequest(page_size=1),
            metadata=(("x-request-id", request_id),),
            timeout=DEADLINE,
        )
        await call
        trailing = dict(await call.trailing_metadata())
    assert trailing["x-request-id"] == request_id


async def test_request_id_is_echoed_on_errors_too(app: LibraryApp) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    async with channel_to(app.address) as channel:
        stub = library_pb2_grpc.ScriptLibraryServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetScript(
                library_pb2.GetScriptRequest(id=str(uuid.uuid4())),
                metadata=(("x-request-id", request_id),),
                timeout=DEADLINE,
            )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert dict(caught.value.trailing_metadata())["x-request-id"] == request_id


async def test_a_request_id_is_made_up_when_the_client_sends_none(app: LibraryApp) -> None:
    async with channel_to(app.address) as channel:
        stub = library_pb2_grpc.ScriptLibraryServiceStub(channel)
        first = stub.ListScripts(library_pb2.ListScriptsRequest(), timeout=DEADLINE)
        second = stub.ListScripts(library_pb2.ListScriptsRequest(), timeout=DEADLINE)
        await first
        await second
        ids = [dict(await c.trailing_metadata())["x-request-id"] for c in (first, second)]
    assert all(ids) and ids[0] != ids[1]


# --- errors -----------------------------------------------------------------------------


async def test_unknown_id_is_not_found_with_error_info(app: LibraryApp) -> None:
    missing = str(uuid.uuid4())
    async with channel_to(app.address) as channel:
        stub = library_pb2_grpc.ScriptLibraryServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetScript(library_pb2.GetScriptRequest(id=missing), timeout=DEADLINE)
    found = details_of(caught.value)
    assert found.code == grpc.StatusCode.NOT_FOUND
    assert found.domain == "hookshelf.dev"
    assert found.reason  # machine-readable, e.g. SCRIPT_NOT_FOUND
    assert "Traceback" not in found.message


# --- bearer token -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer wrong"),),
        (("authorization", TOKEN),),
        # Binary metadata has a -bin key: not the authorization header, so no token.
        (("authorization-bin", f"Bearer {TOKEN}".encode()),),
    ],
    ids=["no-token", "wrong-token", "not-bearer", "binary-header"],
)
async def test_calls_without_the_right_token_are_unauthenticated(
    guarded: LibraryApp, metadata: tuple[tuple[str, str | bytes], ...]
) -> None:
    async with channel_to(guarded.address) as channel:
        stub = library_pb2_grpc.ScriptLibraryServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListScripts(
                library_pb2.ListScriptsRequest(), metadata=metadata, timeout=DEADLINE
            )
    found = details_of(caught.value)
    assert found.code == grpc.StatusCode.UNAUTHENTICATED
    assert found.domain == "hookshelf.dev"
    assert TOKEN not in found.message


async def test_the_right_token_is_let_in(guarded: LibraryApp) -> None:
    async with channel_to(guarded.address) as channel:
        stub = library_pb2_grpc.ScriptLibraryServiceStub(channel)
        response = await stub.ListScripts(
            library_pb2.ListScriptsRequest(),
            metadata=(("authorization", f"Bearer {TOKEN}"),),
            timeout=DEADLINE,
        )
    assert isinstance(response, library_pb2.ListScriptsResponse)


async def test_health_and_reflection_need_no_token(guarded: LibraryApp) -> None:
    serving = health_pb2.HealthCheckResponse.SERVING
    assert await health_status(guarded.address) == serving
    assert await health_status(guarded.running.health_address) == serving
    async with channel_to(guarded.address) as channel:
        (listing,) = await reflect(
            channel, reflection_pb2.ServerReflectionRequest(list_services="")
        )
    assert SERVICE_NAME in {s.name for s in listing.list_services_response.service}
