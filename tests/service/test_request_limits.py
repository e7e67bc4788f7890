"""Requests larger than a method can need are refused before they are parsed, with
RESOURCE_EXHAUSTED saying so, and change nothing; ordinary calls go on being served."""

from __future__ import annotations

import grpc
import pytest

from shared.error_details import details_of
from shared.message_limits import MAX_REQUEST_BYTES
from shared.stubs import library_pb2
from tests.service.assignments_support import DEADLINE

CREATE = "/hookshelf.library.v1.ScriptLibraryService/CreateScript"


def _create_bytes(content_bytes: int) -> bytes:
    return library_pb2.CreateScriptRequest(
        script=library_pb2.Script(name="big", content="x" * content_bytes)
    ).SerializeToString()


async def _raw_call(library, payload: bytes) -> grpc.aio.AioRpcError:
    # A channel that may send what the stub's would not: the server must say no itself.
    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(library.address, options=options) as channel:
        call = channel.unary_unary(CREATE)(payload, timeout=DEADLINE)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
    return raised.value


@pytest.mark.parametrize(
    "content_bytes, says",
    [
        (3 * 1024 * 1024, "CreateScript accepts requests of at most"),
        (MAX_REQUEST_BYTES + 1024, "larger than max"),
    ],
    ids=["over the method's ceiling", "over the server's maximum"],
)
async def test_an_oversized_request_is_refused_unread_and_changes_nothing(
    library, content_bytes: int, says: str
) -> None:
    error = await _raw_call(library, _create_bytes(content_bytes))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert says in (error.details() or ""), error.details()
    if "accepts" in says:
        assert details_of(error).metadata["request_bytes"] == str(len(_create_bytes(content_bytes)))
    listed = await library.stub.ListScripts(library_pb2.ListScriptsRequest(), timeout=DEADLINE)
    assert list(listed.scripts) == []


async def test_content_just_over_its_limit_is_still_reported_by_field(library) -> None:
    """Below the ceiling the request is parsed, and the field at fault named as before."""
    error = await _raw_call(library, _create_bytes(1024 * 1024 + 1))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "script.content" in details_of(error).field_violations
