"""The script RPCs: unpack the request, call domain.scripts, pack the answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from library_service.api.assignments import assignment_to_proto
from library_service.api.history import execution_to_proto, timestamp_of
from library_service.api.script_messages import ScriptMessages
from library_service.context import LibraryContext
from library_service.domain import scripts
from library_service.domain.parameters import ParameterSpec, secret_names
from library_service.store import models
from shared.stubs import library_pb2

M = TypeVar("M", bound=Message)


def parameter_to_proto(stored: dict) -> library_pb2.Parameter:
    """One entry of the stored parameter list (domain.parameters) as the API shows it."""
    return library_pb2.Parameter(
        name=stored["name"],
        type=stored.get("type", library_pb2.PARAMETER_TYPE_TEXT),
        default_value=stored.get("default_value", ""),
        has_default=bool(stored.get("has_default")),
        required=not stored.get("has_default"),
        description=stored.get("description", ""),
    )


def script_to_proto(view: scripts.ScriptView) -> library_pb2.Script:
    """A script as the API shows it (content empty in lists, see ScriptView)."""
    row = view.script
    return library_pb2.Script(
        id=row.id,
        name=row.name,
        description=row.description,
        category=row.category,
        content=view.content,
        digest=row.current_digest,
        default_timeout_seconds=row.default_timeout_seconds,
        default_run_on=row.default_run_on,  # type: ignore[arg-type]  # a stored row keeps the enum as a plain int; the stub wants its ValueType
        is_template=row.is_template,
        template_name=row.template_name or "",
        template_version=row.template_version,
        parameters=[parameter_to_proto(p) for p in row.parameters or []],
        etag=row.etag,
        create_time=timestamp_of(row.created_at),
        update_time=timestamp_of(row.updated_at),
        usage_count=view.usage_count,
        last_used_time=timestamp_of(view.last_used_at),
        file_path=view.file_path,
        version_count=view.version_count,
    )


def version_to_proto(version: models.ScriptVersion, size_bytes: int) -> library_pb2.ScriptVersion:
    return library_pb2.ScriptVersion(
        script_id=version.script_id,
        number=version.number,
        digest=version.digest,
        size_bytes=size_bytes,
        author=version.author,
        create_time=timestamp_of(version.created_at),
    )


def fields_of(script: library_pb2.Script) -> scripts.ScriptFields:
    """The writable fields of a request's Script (output-only fields are ignored)."""
    return scripts.ScriptFields(
        name=script.name,
        description=script.description,
        category=script.category,
        content=script.content,
        default_timeout_seconds=script.default_timeout_seconds,
        default_run_on=script.default_run_on,
        parameters=[
            ParameterSpec(
                name=p.name,
                type=p.type,
                description=p.description,
                default_value=p.default_value,
                has_default=p.has_default,
            )
            for p in script.parameters
        ],
    )


class ScriptRpcs:
    """Scripts and their versions."""

    def __init__(self, ctx: LibraryContext) -> None:
        self.ctx = ctx
        self._listed = ScriptMessages(script_to_proto)

    async def CreateScript(
        self, request: library_pb2.CreateScriptRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.CreateScriptResponse:
        """Creates a script and its version 1; idempotent by request_id."""
        view = await scripts.create_script(
            self.ctx,
            fields_of(request.script),
            author=request.author,
            request_id=request.request_id,
        )
        return library_pb2.CreateScriptResponse(script=script_to_proto(view))

    async def GetScript(
        self, request: library_pb2.GetScriptRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.GetScriptResponse:
        """One script by id or name, with content, assignments and recent executions."""
        selector = request.WhichOneof("selector")
        script_id = request.id if selector == "id" else ""
        name = request.name if selector == "name" else ""
        # An edit of the mirrored file becomes a version first (a commit, so a kept
        # answer is not served after it).
        await scripts.import_mirror_edit(self.ctx, script_id=script_id, name=name)
        return await self._cached(
            "GetScript", request, lambda: self._get_script(request, script_id, name)
        )

    async def _get_script(
        self, request: library_pb2.GetScriptRequest, script_id: str, name: str
    ) -> library_pb2.GetScriptResponse:
        detail = await scripts.get_script(
            self.ctx,
            script_id=script_id,
            name=name,
            recent_limit=request.recent_executions_limit,
        )
        script_name = detail.view.script.name
        hidden = frozenset(secret_names(detail.view.script.parameters or []))
        return library_pb2.GetScriptResponse(
            script=script_to_proto(detail.view),
            assignments=[assignment_to_proto(a, script_name, hidden) for a in detail.assignments],
            recent_executions=[execution_to_proto(e) for e in detail.recent_executions],
        )

    async def ListScripts(
        self, request: library_pb2.ListScriptsRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.ListScriptsResponse:
        """A page of scripts ordered by name (without content: fetch it by digest)."""
        return await self._cached("ListScripts", request, lambda: self._list_scripts(request))

    async def _list_scripts(
        self, request: library_pb2.ListScriptsRequest
    ) -> library_pb2.ListScriptsResponse:
        page = await scripts.list_scripts(
            self.ctx,
            scripts.ScriptFilter(
                query=request.query,
                category=request.category,
                templates_only=request.templates_only,
            ),
            request.page_size,
            request.page_token,
        )
        # The response copies each message in (so kept messages are never modified).
        return library_pb2.ListScriptsResponse(
            scripts=[self._listed.of(view) for view in page.scripts],
            next_page_token=page.next_page_token,
        )

    async def _cached(self, method: str, request: Message, load: Callable[[], Awaitable[M]]) -> M:
        if self.ctx.read_cache is None:
            return await load()
        return await self.ctx.read_cache.read(method, request, load)

    async def UpdateScript(
        self, request: library_pb2.UpdateScriptRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.UpdateScriptResponse:
        """Changes the fields named in update_mask; a stale etag is ABORTED."""
        view = await scripts.update_script(
            self.ctx,
            request.script.id,
            fields_of(request.script),
            list(request.update_mask.paths),
            etag=request.script.etag,
            author=request.author,
        )
        return library_pb2.UpdateScriptResponse(script=script_to_proto(view))

    async def DeleteScript(
        self, request: library_pb2.DeleteScriptRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.DeleteScriptResponse:
        """Deletes a script; FAILED_PRECONDITION while in use unless force."""
        deleted = await scripts.delete_script(
            self.ctx, request.id, etag=request.etag, force=request.force
        )
        return library_pb2.DeleteScriptResponse(
            removed_assignments=[
                assignment_to_proto(a, deleted.name, deleted.secret_names)
                for a in deleted.removed_assignments
            ]
        )

    async def ListScriptVersions(
        self, request: library_pb2.ListScriptVersionsRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.ListScriptVersionsResponse:
        """A script's versions, newest first."""
        page = await scripts.list_script_versions(
            self.ctx, request.script_id, request.page_size, request.page_token
        )
        return library_pb2.ListScriptVersionsResponse(
            versions=[version_to_proto(v, size) for v, size in page.versions],
            next_page_token=page.next_page_token,
        )

    async def GetScriptContent(
        self, request: library_pb2.GetScriptContentRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.GetScriptContentResponse:
        """The bytes of one version by digest, even of a deleted script."""
        row = await scripts.get_content(self.ctx, request.digest)
        return library_pb2.GetScriptContentResponse(
            digest=row.digest, content=row.content, size_bytes=row.size_bytes
        )
