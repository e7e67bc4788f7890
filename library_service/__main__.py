"""`python -m library_service`: serve until SIGTERM, then drain within the grace."""

from __future__ import annotations

import asyncio
import sys

import structlog
from pydantic import ValidationError

from library_service.app import LibraryApp, start_library
from library_service.domain.secrets import SecretKeyError
from shared.credentials import CredentialsError
from shared.grpc_server import exit_leaving_no_stuck_threads, serve_until_signal
from shared.logging_setup import configure_logging
from shared.malloc_tuning import return_large_blocks_to_the_system
from shared.metrics import start_metrics_server
from shared.service_cli import LIBRARY, parse_service_args
from shared.settings import load_settings, settings_error
from shared.tls_files import TlsConfigError

# How long closing the database may take after the server drained.
CLOSE_BOUND_SECONDS = 5.0


async def _close(app: LibraryApp) -> None:
    try:
        await asyncio.wait_for(app.close(), CLOSE_BOUND_SECONDS)
    except TimeoutError:
        pass  # a driver thread is stuck; exit_leaving_no_stuck_threads ends the process


async def _main() -> None:
    return_large_blocks_to_the_system()  # a burst of large requests is not kept
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    start_metrics_server(settings.metrics_listen)
    app = await start_library(settings)
    await serve_until_signal(app.running, settings.shutdown_grace_seconds, lambda: _close(app))
    # Inside the loop: asyncio.run's own clean-up would wait on a cut call's rollback.
    exit_leaving_no_stuck_threads()


def main() -> None:
    parse_service_args(LIBRARY)
    try:
        asyncio.run(_main())
    except ValidationError as error:
        # Before logging is configured: one line on stderr, no traceback.
        sys.exit(f"library: cannot start: {settings_error(error)}")
    except SecretKeyError as error:
        # A key that cannot be used must stop the service; say why in one line.
        structlog.get_logger("hookshelf.library").error(
            "library.secret_key_unusable", error=str(error)
        )
        sys.exit(2)
    except TlsConfigError as error:
        # Certificates that cannot be used: one line that says why, no traceback.
        sys.exit(f"library: cannot start: {error}")
    except CredentialsError as error:
        # Tokens or certificate rules that cannot be used: one line that says why.
        structlog.get_logger("hookshelf.library").error(
            "library.credentials_unusable", error=str(error)
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
