"""`python -m library_service`: serve until SIGTERM, then drain."""

from __future__ import annotations

import asyncio

from library_service.app import start_library
from shared.grpc_server import serve_until_signal
from shared.logging_setup import configure_logging
from shared.settings import load_settings


async def _main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = await start_library(settings)
    await serve_until_signal(
        app.running, settings.shutdown_grace_seconds, app.context.database.close
    )


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
