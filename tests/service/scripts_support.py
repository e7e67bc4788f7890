"""Helpers shared by the script and mirror service tests (no tests here)."""

from __future__ import annotations

import uuid

from shared.stubs import library_pb2
from tests.service.assignments_support import DEADLINE

CONTENT = "#!/bin/sh\necho hello\n"


def unique_name(prefix: str = "script") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create(
    library,
    name: str | None = None,
    content: str = CONTENT,
    *,
    author: str = "tests",
    request_id: str = "",
    **fields,
) -> library_pb2.Script:
    """A new script made through CreateScript."""
    response = await library.stub.CreateScript(
        library_pb2.CreateScriptRequest(
            script=library_pb2.Script(name=name or unique_name(), content=content, **fields),
            author=author,
            request_id=request_id,
        ),
        timeout=DEADLINE,
    )
    return response.script


def update_call(
    library,
    script_id: str,
    paths: list[str],
    *,
    etag: str = "",
    author: str = "tests",
    **fields,
):
    """The UpdateScript call (awaitable), for tests that expect it to fail."""
    return library.stub.UpdateScript(
        library_pb2.UpdateScriptRequest(
            script=library_pb2.Script(id=script_id, etag=etag, **fields),
            update_mask={"paths": paths},
            author=author,
        ),
        timeout=DEADLINE,
    )


async def update(library, script_id: str, paths: list[str], **kwargs) -> library_pb2.Script:
    return (await update_call(library, script_id, paths, **kwargs)).script


async def get(library, script_id: str, **kwargs) -> library_pb2.GetScriptResponse:
    return await library.stub.GetScript(
        library_pb2.GetScriptRequest(id=script_id, **kwargs), timeout=DEADLINE
    )


async def versions(library, script_id: str) -> list[library_pb2.ScriptVersion]:
    response = await library.stub.ListScriptVersions(
        library_pb2.ListScriptVersionsRequest(script_id=script_id, page_size=1000),
        timeout=DEADLINE,
    )
    return list(response.versions)


async def all_scripts(library, **filters) -> list[library_pb2.Script]:
    """Every page of ListScripts."""
    found: list[library_pb2.Script] = []
    token = ""
    while True:
        response = await library.stub.ListScripts(
            library_pb2.ListScriptsRequest(page_token=token, **filters), timeout=DEADLINE
        )
        found.extend(response.scripts)
        token = response.next_page_token
        if not token:
            return found


async def snapshot(library) -> list[tuple[str, str, str, int]]:
    """What a bad request must leave alone: every script's id, name, etag and versions."""
    return [(s.id, s.name, s.etag, s.version_count) for s in await all_scripts(library)]


async def assign(library, script_id: str, repository_id: str, hook_type: int):
    response = await library.stub.AssignScript(
        library_pb2.AssignScriptRequest(
            assignment=library_pb2.Assignment(
                repository_id=repository_id, script_id=script_id, hook_type=hook_type
            )
        ),
        timeout=DEADLINE,
    )
    return response.assignment
