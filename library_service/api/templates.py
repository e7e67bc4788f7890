"""ListTemplates and InstantiateTemplate: unpack, call library_service.templates, pack."""

from __future__ import annotations

import grpc

from library_service.api.scripts import parameter_to_proto, script_to_proto
from library_service.context import LibraryContext
from library_service.templates import catalog, installed
from library_service.templates.instantiate import instantiate
from shared.stubs import library_pb2


def template_to_proto(template: installed.InstalledTemplate) -> library_pb2.Template:
    """An installed template; the suggested hook type comes from the shipped header."""
    row = template.script
    spec = catalog.find(row.template_name or "")
    return library_pb2.Template(
        name=row.template_name or "",
        description=row.description,
        category=row.category,
        template_version=row.template_version,
        content=template.content,
        digest=row.current_digest,
        parameters=[parameter_to_proto(p) for p in row.parameters or []],
        script_id=row.id,
        suggested_hook_type=spec.hook_type if spec else library_pb2.HOOK_TYPE_UNSPECIFIED,  # type: ignore[arg-type]  # the catalog keeps the hook type as a plain int
    )


class TemplateRpcs:
    """The built-in templates (installed at start-up by maintenance/install_templates)."""

    def __init__(self, ctx: LibraryContext) -> None:
        self.ctx = ctx

    async def ListTemplates(
        self, request: library_pb2.ListTemplatesRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.ListTemplatesResponse:
        """Every installed template with its content and parameters, by name."""
        templates = await installed.list_installed(self.ctx)
        return library_pb2.ListTemplatesResponse(
            templates=[template_to_proto(t) for t in templates]
        )

    async def InstantiateTemplate(
        self, request: library_pb2.InstantiateTemplateRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.InstantiateTemplateResponse:
        """A user's copy of a template, its parameter defaults set to the given values."""
        view = await instantiate(
            self.ctx,
            request.template_name,
            request.script_name,
            dict(request.parameter_values),
            description=request.description,
            request_id=request.request_id,
        )
        return library_pb2.InstantiateTemplateResponse(script=script_to_proto(view))
