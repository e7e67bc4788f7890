"""Placeholder until this area is built; its RPCs answer UNIMPLEMENTED."""

from library_service.context import LibraryContext


class TemplateRpcs:
    def __init__(self, ctx: LibraryContext) -> None:
        self.ctx = ctx
