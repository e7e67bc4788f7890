"""Helpers shared by the assignment, plan, history and window service tests (no tests).

Scripts are made through CreateScript, the real path. Until that RPC exists
(UNIMPLEMENTED) they are inserted as rows with the schema's own models instead, so these
tests do not wait on the scripts work.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import pytest

from library_service.store import models
from shared.error_details import ErrorDetails, details_of
from shared.stubs import library_pb2

DEADLINE = 10  # seconds; every client call has one

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
    try:
        response = await library.stub.CreateScript(request, timeout=DEADLINE)
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
        return await _insert_script(library, request.script)
    return MadeScript(response.script.id, response.script.name, response.script.digest)


async def _insert_script(library, script: library_pb2.Script) -> MadeScript:
    data = script.content.encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    now = datetime.now(UTC)
    script_id = str(uuid.uuid4())
    async with library.app.context.database.transaction() as session:
        if await session.get(models.ScriptContent, digest) is None:
            session.add(
                models.ScriptContent(
                    digest=digest, content=script.content, size_bytes=len(data), created_at=now
                )
            )
            await session.flush()
        session.add(
            models.Script(
                id=script_id,
                name=script.name,
                slug=script.name,
                description="",
                category="",
                current_digest=digest,
                default_timeout_seconds=script.default_timeout_seconds or 300,
                default_run_on=script.default_run_on or library_pb2.RUN_ON_SUCCESS,
                parameters=[
                    {
                        "name": p.name,
                        "type": p.type or library_pb2.PARAMETER_TYPE_TEXT,
                        "default_value": p.default_value,
                        "has_default": p.has_default,
                        "description": p.description,
                    }
                    for p in script.parameters
                ],
                etag=uuid.uuid4().hex,
                created_at=now,
                updated_at=now,
            )
        )
        await session.flush()
        session.add(
            models.ScriptVersion(
                script_id=script_id, number=1, digest=digest, author="tests", created_at=now
            )
        )
    return MadeScript(script_id, script.name, digest)


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
