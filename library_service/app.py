"""Assembling the library service: migrate, open the store, serve."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from library_service.context import LibraryContext
from library_service.servicer import ScriptLibraryServicer
from library_service.store import migrate
from library_service.store.database import Database
from shared.grpc_server import RunningServer, start_server
from shared.settings import Settings
from shared.stubs import library_pb2, library_pb2_grpc

log = structlog.get_logger("hookshelf.library")

SERVICE_NAME = library_pb2.DESCRIPTOR.services_by_name["ScriptLibraryService"].full_name


@dataclass
class LibraryApp:
    """A running library service."""

    context: LibraryContext
    running: RunningServer

    @property
    def address(self) -> str:
        return self.running.address

    async def stop(self, grace: float = 0) -> None:
        await self.running.stop(grace)
        await self.context.database.close()


async def start_library(settings: Settings) -> LibraryApp:
    """Bring the schema to head, then start serving on settings.library_listen."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.effective_database_url
    await migrate.upgrade(url)
    context = LibraryContext(settings=settings, database=Database(url))
    servicer = ScriptLibraryServicer(context)
    running = await start_server(
        listen=settings.library_listen,
        register=lambda server: library_pb2_grpc.add_ScriptLibraryServiceServicer_to_server(
            servicer, server
        ),
        service_names=[SERVICE_NAME],
        health_listen=settings.library_health_listen,
        auth_token=settings.auth_token,
    )
    log.info("library.started", address=running.address, data_dir=str(settings.data_dir))
    return LibraryApp(context=context, running=running)
