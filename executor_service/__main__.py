"""`python -m executor_service`: serve until SIGTERM/SIGINT, then drain."""

from __future__ import annotations

import asyncio
import signal
import sys

from pydantic import ValidationError

from executor_service.app import start_executor
from executor_service.journal import JournalKeyMissing, JournalTooNew, StateDirInUse
from shared.credentials import CredentialsError
from shared.logging_setup import configure_logging
from shared.malloc_tuning import return_large_blocks_to_the_system
from shared.metrics import start_metrics_server
from shared.service_cli import EXECUTOR, parse_service_args
from shared.settings import load_settings, settings_error
from shared.tls_files import TlsConfigError


async def _main() -> None:
    return_large_blocks_to_the_system()  # a burst of large requests is not kept
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    start_metrics_server(settings.metrics_listen)
    app = await start_executor(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await app.stop(settings.shutdown_grace_seconds)


def main() -> None:
    parse_service_args(EXECUTOR)
    try:
        asyncio.run(_main())
    except ValidationError as error:
        sys.exit(f"executor: cannot start: {settings_error(error)}")
    except (
        StateDirInUse,
        JournalTooNew,
        JournalKeyMissing,
        TlsConfigError,
        CredentialsError,
    ) as refusal:
        # A state dir the executor must not touch, certificates or identities it cannot
        # use: one line that says why, no traceback.
        sys.exit(f"executor: cannot start: {refusal}")


if __name__ == "__main__":
    main()
