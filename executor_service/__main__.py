"""`python -m executor_service`: serve until SIGTERM/SIGINT, then drain."""

from __future__ import annotations

import asyncio
import signal
import sys

from executor_service.app import start_executor
from executor_service.journal import JournalTooNew, StateDirInUse
from shared.credentials import CredentialsError
from shared.logging_setup import configure_logging
from shared.metrics import start_metrics_server
from shared.service_cli import EXECUTOR, parse_service_args
from shared.settings import load_settings


async def _main() -> None:
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
    except (StateDirInUse, JournalTooNew, CredentialsError) as refusal:
        # A state dir the executor must not touch, or identities it cannot use: one line
        # that says why, no traceback.
        sys.exit(f"executor: cannot start: {refusal}")


if __name__ == "__main__":
    main()
