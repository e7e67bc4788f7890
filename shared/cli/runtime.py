"""Where every command runs: the configured targets, the clients, and the one error boundary.

A failed call ends as ONE line on stderr and a documented exit code (docs/cli.md), never a
traceback. `HOOKSHELF_DEBUG=1` shows the traceback of an unexpected error.
"""

from __future__ import annotations

import asyncio
import os
import sys
import traceback
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
import typer

from shared.client import ExecutorClient, HookshelfCallError, LibraryClient
from shared.client.tls import ClientTls

EXIT_REFUSED = 1  # a service refused the request (not found, invalid, conflict, ...)
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: a service could not be reached
EXIT_NOPERM = 77  # EX_NOPERM: the token was refused
EXIT_INTERRUPTED = 130  # 128 + SIGINT


class CliError(Exception):
    """A problem the user can fix, reported as one line; exit_code says how it ends."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Config:
    """Global options: where the services are, how to reach them (token, TLS for
    host:port targets), and how long a call may take."""

    library_target: str
    executor_target: str
    auth_token: str
    timeout: float
    tls: ClientTls = field(default_factory=ClientTls)

    def library(self) -> LibraryClient:
        return LibraryClient(
            self.library_target, auth_token=self.auth_token, timeout=self.timeout, tls=self.tls
        )

    def executor(self) -> ExecutorClient:
        return ExecutorClient(
            self.executor_target, auth_token=self.auth_token, timeout=self.timeout, tls=self.tls
        )


def config(ctx: typer.Context) -> Config:
    return ctx.find_root().obj


def fail(message: str, exit_code: int = EXIT_REFUSED) -> NoReturn:
    """Print `hookshelf: message` on stderr and exit."""
    sys.stderr.write(f"hookshelf: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(exit_code)


def exit_code_for(error: HookshelfCallError, refused: int = EXIT_REFUSED) -> int:
    if error.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return EXIT_UNAVAILABLE
    if error.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return EXIT_NOPERM
    return refused


def run(coroutine: Coroutine[Any, Any, Any], *, refused_exit: int = EXIT_REFUSED) -> Any:
    """Run one command's coroutine; turn every failure into one line and an exit code."""
    try:
        return asyncio.run(coroutine)
    except typer.Exit:
        raise
    except HookshelfCallError as error:
        fail(str(error), exit_code_for(error, refused_exit))
    except CliError as error:
        fail(str(error), error.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    except OSError as error:
        where = f": {error.filename}" if error.filename else ""
        fail(f"{error.strerror or error}{where}")
    except Exception as error:  # noqa: BLE001 - the boundary: one line, never a traceback
        if os.environ.get("HOOKSHELF_DEBUG"):
            traceback.print_exc()
        fail(f"unexpected error: {type(error).__name__}: {error}", 70)
