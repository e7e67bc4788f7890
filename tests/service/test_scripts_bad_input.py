"""Every kind of bad input to the script RPCs gets a clear status naming the field at
fault, never INTERNAL, and changes nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable

import grpc
import pytest

from shared.hook_policy import MAX_CONTENT_BYTES
from shared.stubs import library_pb2
from tests.service.assignments_support import DEADLINE, expect_invalid, rejected
from tests.service.scripts_support import (
    create,
    snapshot,
    update_call,
)

CREATE_METHOD = "/hookshelf.library.v1.ScriptLibraryService/CreateScript"


def _create_call(library, **script_fields):
    script_fields.setdefault("name", "a-script")
    script_fields.setdefault("content", "echo hi\n")
    return library.stub.CreateScript(
        library_pb2.CreateScriptRequest(script=library_pb2.Script(**script_fields)),
        timeout=DEADLINE,
    )


Case = Callable[[object, library_pb2.Script], Awaitable[object]]

# (id, call given the library and an existing script, field the BadRequest must name)
INVALID: list[tuple[str, Case, str]] = [
    ("empty name", lambda lib, s: _create_call(lib, name=""), "script.name"),
    ("blank name", lambda lib, s: _create_call(lib, name="   "), "script.name"),
    ("256-character name", lambda lib, s: _create_call(lib, name="n" * 256), "script.name"),
    ("newline in name", lambda lib, s: _create_call(lib, name="a\nb"), "script.name"),
    ("escape in name", lambda lib, s: _create_call(lib, name="a\x1b[31m"), "script.name"),
    ("empty content", lambda lib, s: _create_call(lib, content=""), "script.content"),
    (
        "content over 1 MiB",
        lambda lib, s: _create_call(lib, content="x" * (MAX_CONTENT_BYTES + 1)),
        "script.content",
    ),
    (
        "content over 1 MiB in UTF-8 bytes",
        lambda lib, s: _create_call(lib, content="é" * (MAX_CONTENT_BYTES // 2 + 1)),
        "script.content",
    ),
    ("NUL in content", lambda lib, s: _create_call(lib, content="echo\x00hi"), "script.content"),
    (
        "NUL in description",
        lambda lib, s: _create_call(lib, description="a\x00b"),
        "script.description",
    ),
    ("long category", lambda lib, s: _create_call(lib, category="c" * 65), "script.category"),
    (
        "negative timeout",
        lambda lib, s: _create_call(lib, default_timeout_seconds=-1),
        "script.default_timeout_seconds",
    ),
    (
        "absurd timeout",
        lambda lib, s: _create_call(lib, default_timeout_seconds=86_401),
        "script.default_timeout_seconds",
    ),
    (
        "zero timeout on update",
        lambda lib, s: update_call(lib, s.id, ["default_timeout_seconds"]),
        "script.default_timeout_seconds",
    ),
    (
        "unknown run_on",
        lambda lib, s: _create_call(lib, default_run_on=99),  # type: ignore[arg-type]
        "script.default_run_on",
    ),
    (
        "reserved parameter name",
        lambda lib, s: _create_call(
            lib, parameters=[library_pb2.Parameter(name="HOOKSHELF_RUN_ID")]
        ),
        "script.parameters[0].name",
    ),
    (
        "lower-case parameter name",
        lambda lib, s: _create_call(lib, parameters=[library_pb2.Parameter(name="token")]),
        "script.parameters[0].name",
    ),
    (
        "unknown parameter type",
        lambda lib, s: _create_call(
            lib,
            parameters=[library_pb2.Parameter(name="A", type=7)],  # type: ignore[arg-type]
        ),
        "script.parameters[0].type",
    ),
    (
        "parameter declared twice",
        lambda lib, s: _create_call(
            lib, parameters=[library_pb2.Parameter(name="A"), library_pb2.Parameter(name="A")]
        ),
        "script.parameters[1].name",
    ),
    (
        "control character in request_id",
        lambda lib, s: lib.stub.CreateScript(
            library_pb2.CreateScriptRequest(
                script=library_pb2.Script(name="x", content="y"), request_id="r\x07"
            ),
            timeout=DEADLINE,
        ),
        "request_id",
    ),
    (
        "malformed id",
        lambda lib, s: lib.stub.GetScript(
            library_pb2.GetScriptRequest(id="../etc/passwd"), timeout=DEADLINE
        ),
        "id",
    ),
    (
        "no selector",
        lambda lib, s: lib.stub.GetScript(library_pb2.GetScriptRequest(), timeout=DEADLINE),
        "id",
    ),
    (
        "negative recent_executions_limit",
        lambda lib, s: lib.stub.GetScript(
            library_pb2.GetScriptRequest(id=s.id, recent_executions_limit=-1), timeout=DEADLINE
        ),
        "recent_executions_limit",
    ),
    (
        "empty update_mask",
        lambda lib, s: update_call(lib, s.id, [], description="x"),
        "update_mask",
    ),
    (
        "unknown update_mask path",
        lambda lib, s: update_call(lib, s.id, ["description", "nmae"], description="x"),
        "update_mask",
    ),
    (
        "read-only update_mask path",
        lambda lib, s: update_call(lib, s.id, ["etag"]),
        "update_mask",
    ),
    (
        "update without id",
        lambda lib, s: update_call(lib, "", ["description"]),
        "script.id",
    ),
    (
        "empty content on update",
        lambda lib, s: update_call(lib, s.id, ["content"]),
        "script.content",
    ),
    (
        "control character in new name",
        lambda lib, s: update_call(lib, s.id, ["name"], name="a\tb"),
        "script.name",
    ),
    (
        "malformed page token",
        lambda lib, s: lib.stub.ListScripts(
            library_pb2.ListScriptsRequest(page_token="not-a-token"), timeout=DEADLINE
        ),
        "page_token",
    ),
    (
        "negative page size",
        lambda lib, s: lib.stub.ListScripts(
            library_pb2.ListScriptsRequest(page_size=-5), timeout=DEADLINE
        ),
        "page_size",
    ),
    (
        "NUL in query",
        lambda lib, s: lib.stub.ListScripts(
            library_pb2.ListScriptsRequest(query="a\x00"), timeout=DEADLINE
        ),
        "query",
    ),
    (
        "malformed versions page token",
        lambda lib, s: lib.stub.ListScriptVersions(
            library_pb2.ListScriptVersionsRequest(script_id=s.id, page_token="%%%"),
            timeout=DEADLINE,
        ),
        "page_token",
    ),
    (
        "malformed digest",
        lambda lib, s: lib.stub.GetScriptContent(
            library_pb2.GetScriptContentRequest(digest="sha256:XYZ"), timeout=DEADLINE
        ),
        "digest",
    ),
    (
        "digest of another algorithm",
        lambda lib, s: lib.stub.GetScriptContent(
            library_pb2.GetScriptContentRequest(digest="md5:" + "0" * 32), timeout=DEADLINE
        ),
        "digest",
    ),
    (
        "malformed id on delete",
        lambda lib, s: lib.stub.DeleteScript(
            library_pb2.DeleteScriptRequest(id="x"), timeout=DEADLINE
        ),
        "id",
    ),
]


@pytest.fixture
async def existing(library) -> library_pb2.Script:
    return await create(library, "existing", "echo ${NAME}\n")


@pytest.mark.parametrize(("call", "field"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
async def test_bad_input_is_invalid_argument_naming_the_field(
    library, existing, call: Case, field: str
) -> None:
    before = await snapshot(library)

    found = await expect_invalid(call(library, existing), field)

    assert found.reason == "INVALID_ARGUMENT" and found.domain == "hookshelf.dev"
    assert await snapshot(library) == before


def _raw_create(library) -> grpc.aio.UnaryUnaryMultiCallable:
    return library.channel.unary_unary(
        CREATE_METHOD, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw
    )


def _length_delimited(number: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


@pytest.mark.parametrize(
    ("script_bytes", "field"),
    [
        (_length_delimited(2, b"ok") + _length_delimited(5, b"echo \xff\xfe"), "script.content"),
        (_length_delimited(2, b"bad \xc3\x28") + _length_delimited(5, b"echo"), "script.name"),
    ],
    ids=["content", "name"],
)
async def test_invalid_utf8_is_invalid_argument_naming_the_field(
    library, script_bytes: bytes, field: str
) -> None:
    """proto3 strings must be UTF-8; protobuf refuses the request before any servicer
    runs, and the client still learns which field was wrong."""
    before = await snapshot(library)

    found = await expect_invalid(
        _raw_create(library)(_length_delimited(1, script_bytes), timeout=DEADLINE), field
    )

    assert found.field_violations[field] == "is not valid UTF-8"
    assert await snapshot(library) == before


async def test_bytes_that_are_no_message_at_all_are_invalid_argument(library) -> None:
    found = await expect_invalid(_raw_create(library)(b"\x0a\x7f\x01", timeout=DEADLINE), "request")
    assert found.code == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_duplicate_name_is_already_exists(library, existing) -> None:
    before = await snapshot(library)

    found = await rejected(_create_call(library, name="existing"))

    assert found.code == grpc.StatusCode.ALREADY_EXISTS
    assert found.metadata == {"name": "existing", "script_id": existing.id}
    assert await snapshot(library) == before


async def test_renaming_onto_a_taken_name_is_already_exists(library, existing) -> None:
    other = await create(library, "other")
    before = await snapshot(library)

    found = await rejected(update_call(library, other.id, ["name"], name="existing"))

    assert found.code == grpc.StatusCode.ALREADY_EXISTS
    assert await snapshot(library) == before


@pytest.mark.parametrize(
    "call",
    [
        lambda lib: lib.stub.GetScript(
            library_pb2.GetScriptRequest(id=str(uuid.uuid4())), timeout=DEADLINE
        ),
        lambda lib: lib.stub.GetScript(
            library_pb2.GetScriptRequest(name="no such script"), timeout=DEADLINE
        ),
        lambda lib: update_call(lib, str(uuid.uuid4()), ["description"]),
        lambda lib: lib.stub.DeleteScript(
            library_pb2.DeleteScriptRequest(id=str(uuid.uuid4())), timeout=DEADLINE
        ),
        lambda lib: lib.stub.ListScriptVersions(
            library_pb2.ListScriptVersionsRequest(script_id=str(uuid.uuid4())), timeout=DEADLINE
        ),
        lambda lib: lib.stub.GetScriptContent(
            library_pb2.GetScriptContentRequest(digest="sha256:" + "0" * 64), timeout=DEADLINE
        ),
    ],
    ids=["get-by-id", "get-by-name", "update", "delete", "versions", "content"],
)
async def test_unknown_resources_are_not_found(library, existing, call) -> None:
    before = await snapshot(library)

    found = await rejected(call(library))

    assert found.code == grpc.StatusCode.NOT_FOUND
    assert found.reason == "NOT_FOUND"
    assert await snapshot(library) == before


async def test_a_page_token_of_another_query_is_invalid_argument(library) -> None:
    for index in range(3):
        await create(library, f"s{index}")
    first = await library.stub.ListScripts(
        library_pb2.ListScriptsRequest(page_size=1), timeout=DEADLINE
    )

    await expect_invalid(
        library.stub.ListScripts(
            library_pb2.ListScriptsRequest(
                page_size=1, page_token=first.next_page_token, query="s"
            ),
            timeout=DEADLINE,
        ),
        "page_token",
    )


async def test_a_tampered_page_token_is_invalid_argument(library) -> None:
    """A token edited to carry a key of another type must not reach the database."""
    for index in range(3):
        await create(library, f"s{index}")
    first = await library.stub.ListScripts(
        library_pb2.ListScriptsRequest(page_size=1), timeout=DEADLINE
    )
    token = first.next_page_token
    payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    payload["k"] = [{"$gt": 1}]
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")

    await expect_invalid(
        library.stub.ListScripts(
            library_pb2.ListScriptsRequest(page_size=1, page_token=forged), timeout=DEADLINE
        ),
        "page_token",
    )
