"""Helpers shared by the assignment, plan, history and window service tests (no tests).

Scripts are made through CreateScript, the real path.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc
import pytest

from shared.error_details import ErrorDetails, details_of
from shared.stubs import library_pb2

DEADLINE = 30  # seconds; every client call has one (a ceiling: room for a busy machine)

PRE = library_pb2.HOOK_TYPE_PRE_BACKUP
POST = library_pb2.HOOK_TYPE_POST_BACKUP


@dataclass(frozen=True)
class MadeScript:
    id: str
    name: str
    digest: str


async def make_script(
    library,
    name: str | None = None,
    *,
    content: str = "#!/bin/sh\necho hello\n",
    default_timeout_seconds: int = 0,
    default_run_on: int = 0,
    parameters: list[library_pb2.Parameter] | None = None,
) -> MadeScript:
    """A script in the library, via CreateScript when the server has it."""
    name = name or f"script-{uuid.uuid4().hex[:8]}"
    request = library_pb2.CreateScriptRequest(
        script=library_pb2.Script(
            name=name,
            content=content,
            default_timeout_seconds=default_timeout_seconds,
            default_run_on=default_run_on,  # type: ignore[arg-type]
            parameters=parameters or [],
        ),
        author="tests",
    )
    response = await library.stub.CreateScript(request, timeout=DEADLINE)
    return MadeScript(response.script.id, response.script.name, response.script.digest)


async def rejected(call) -> ErrorDetails:
    """Awaits a call that must fail; returns what the error said."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return details_of(caught.value)


async def expect_invalid(call, field: str) -> ErrorDetails:
    """The call is INVALID_ARGUMENT with a BadRequest violation on ``field``."""
    found = await rejected(call)
    assert found.code == grpc.StatusCode.INVALID_ARGUMENT, (field, found)
    assert field in found.field_violations, (field, found.field_violations)
    return found
