"""The ScriptLibraryService servicer, composed of one thin part per area (api/)."""

from __future__ import annotations

from library_service.api.assignments import AssignmentRpcs
from library_service.api.history import HistoryRpcs
from library_service.api.scripts import ScriptRpcs
from library_service.api.templates import TemplateRpcs
from library_service.api.windows import WindowRpcs
from shared.stubs import library_pb2_grpc


class ScriptLibraryServicer(
    ScriptRpcs,
    AssignmentRpcs,
    HistoryRpcs,
    TemplateRpcs,
    WindowRpcs,
    library_pb2_grpc.ScriptLibraryServiceServicer,
):
    """Each part gets the shared `LibraryContext` (database, mirror, settings) as self.ctx."""
