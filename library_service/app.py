"""Assembling the library service: migrate, open the store, serve."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from library_service.context import LibraryContext
from library_service.domain.mirror import ScriptMirror, mirror_root
from library_service.domain.secrets import load_cipher
from library_service.maintenance import install_templates
from library_service.servicer import ScriptLibraryServicer
from library_service.store import migrate
from library_service.store.change_stamp import change_stamp_for
from library_service.store.database import Database
from library_service.store.read_cache import ReadCache
from shared.credentials import load_credentials
from shared.grpc_server import RunningServer, start_server
from shared.message_limits import MAX_REQUEST_BYTES
from shared.request_budget import RequestBudget, RequestLimits
from shared.request_decoding import add_service
from shared.settings import Settings
from shared.stubs import library_pb2
from shared.tls_server import ServerTls

log = structlog.get_logger("hookshelf.library")

SERVICE = library_pb2.DESCRIPTOR.services_by_name["ScriptLibraryService"]
SERVICE_NAME = SERVICE.full_name
# Requests carry at most a script's content, except the executors' batches of records.
REQUEST_LIMITS = RequestLimits(by_method={"RecordExecutions": MAX_REQUEST_BYTES})


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
        await self.close()

    async def close(self) -> None:
        """Releases what the service holds besides the server: the mirror's scan, then
        the database. For shutdown hooks after the server has drained."""
        if self.context.mirror is not None:
            await self.context.mirror.stop()
        if self.context.read_cache is not None:
            await self.context.read_cache.close()
        await self.context.database.close()


async def start_library(
    settings: Settings,
    *,
    mirror_enabled: bool | None = None,
    mirror_scan_seconds: float | None = None,
) -> LibraryApp:
    """Bring the schema to head, resync the file mirror, then serve on
    settings.library_listen.

    The mirror runs unless ``mirror_enabled`` is False: only one replica may own it, the
    others pass False. ``mirror_scan_seconds`` is how often it looks for edits (0: only at
    start and on reads). Both default to the settings of the same names.
    """
    # First: certificates or identities that cannot be used stop the start before anything
    # else is touched; then a key that cannot be used.
    tls = ServerTls.from_settings(settings)
    credentials = load_credentials(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    cipher = load_cipher(settings)
    url = settings.effective_database_url
    await migrate.upgrade(url)
    database = Database(url)
    if database.space_reserve is not None:  # lets DeleteScript work on a full disk
        database.space_reserve.ensure()
    if mirror_enabled is None:
        mirror_enabled = settings.mirror_enabled
    if mirror_scan_seconds is None:
        mirror_scan_seconds = settings.mirror_scan_seconds
    mirror = None
    if mirror_enabled:
        mirror = ScriptMirror(mirror_root(settings.data_dir), database, mirror_scan_seconds)
        await mirror.start()
    read_cache = ReadCache(change_stamp_for(url, database.engine), settings.read_cache_bytes)
    context = LibraryContext(
        settings=settings, database=database, mirror=mirror, cipher=cipher, read_cache=read_cache
    )
    servicer = ScriptLibraryServicer(context)
    try:
        # Built-in templates: installed or upgraded before serving (maintenance/install_templates).
        if settings.install_templates:
            await install_templates.install_at_startup(context)
        running = await start_server(
            listen=settings.library_listen,
            register=lambda server: add_service(
                server, servicer, SERVICE, RequestBudget(), REQUEST_LIMITS
            ),
            service_names=[SERVICE_NAME],
            health_listen=settings.library_health_listen,
            credentials=credentials,
            tls=tls,
        )
    except BaseException:
        if mirror is not None:
            await mirror.stop()
        await read_cache.close()
        await database.close()
        raise
    log.info("library.started", address=running.address, data_dir=str(settings.data_dir))
    return LibraryApp(context=context, running=running)
