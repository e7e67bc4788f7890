"""Who may do what, against real servers: every RPC of both services called as every
role, without a token and with a wrong one (docs/decisions.md "Roles"). Requests are
empty, so an allowed call may still fail validation; what matters is that it was not
refused for who called. The expectations live in roles_support (MAY_CALL), shared with
the same matrix over mutual TLS with client certificates (test_roles_certificates.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from tests.conftest import LibraryHandle, open_library
from tests.service.executor_support import ExecutorHandle, open_executor
from tests.service.roles_support import (
    EXECUTOR,
    IDENTITIES,
    LIBRARY,
    REFUSED,
    TOKEN_SETTINGS,
    call_empty,
    check_every_cell,
    header_callers,
)


@pytest.fixture
async def guarded_library(library_settings) -> AsyncIterator[LibraryHandle]:
    async with open_library(library_settings.model_copy(update=TOKEN_SETTINGS)) as handle:
        yield handle


@pytest.fixture
async def guarded_executor(
    guarded_library: LibraryHandle, tmp_path: Path, short_socket_dir: Path
) -> AsyncIterator[ExecutorHandle]:
    handle = await open_executor(guarded_library, tmp_path, short_socket_dir, **TOKEN_SETTINGS)
    try:
        yield handle
    finally:
        await handle.channel.close()
        await handle.app.stop(0)


async def _check_every_cell(channel: grpc.aio.Channel, service) -> None:
    await check_every_cell(service, header_callers(channel, IDENTITIES), no_role=("none", "wrong"))


async def test_every_library_rpc_as_every_role(guarded_library: LibraryHandle) -> None:
    await _check_every_cell(guarded_library.channel, LIBRARY)


async def test_every_executor_rpc_as_every_role(guarded_executor: ExecutorHandle) -> None:
    await _check_every_cell(guarded_executor.channel, EXECUTOR)


async def test_without_any_token_configured_everyone_may_call_everything(
    library: LibraryHandle,
) -> None:
    for method in LIBRARY.methods:
        found = await call_empty(library.channel, method, "none")
        assert found is None or found.code not in REFUSED, (method.name, found)
