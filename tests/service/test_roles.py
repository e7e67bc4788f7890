"""Who may do what, against real servers: every RPC of both services called as every
role, without a token and with a wrong one (docs/decisions.md "Roles"). Requests are
empty, so an allowed call may still fail validation; what matters is that it was not
refused for who called. Certificates are covered once TLS lands (unit tests map them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from tests.conftest import LibraryHandle, open_library
from tests.service.executor_support import ExecutorHandle, open_executor
from tests.service.roles_support import EXECUTOR, IDENTITIES, LIBRARY, TOKEN_SETTINGS, call_empty

REFUSED = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}

# What each role may call, spelled out as the docs promise it (admin: everything).
MAY_CALL = {
    "executor": {
        "ResolveHookPlan",
        "GetScriptContent",
        "GetScript",
        "GetMaintenanceWindow",
        "RecordExecutions",
        *(m.name for m in EXECUTOR.methods),
    },
    "reader": {
        "GetScript",
        "ListScripts",
        "ListScriptVersions",
        "GetScriptContent",
        "ListAssignments",
        "ResolveHookPlan",
        "ListExecutions",
        "ListTemplates",
        "GetMaintenanceWindow",
        "ListMaintenanceWindows",
        "GetBackupRun",
    },
}


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
    wrong: list[str] = []
    for method in service.methods:
        for identity in IDENTITIES:
            found = await call_empty(channel, method, identity)
            code = found.code if found else grpc.StatusCode.OK
            cell = f"{method.name} as {identity}: {code.name}"
            if identity in ("none", "wrong"):
                if code != grpc.StatusCode.UNAUTHENTICATED:
                    wrong.append(cell)
            elif identity == "admin" or method.name in MAY_CALL[identity]:
                if code in REFUSED:
                    wrong.append(cell)
            elif code != grpc.StatusCode.PERMISSION_DENIED:
                wrong.append(cell)
            else:
                assert found is not None
                assert (found.reason, found.domain) == ("ROLE_NOT_ALLOWED", "hookshelf.dev")
                assert found.metadata == {
                    "role": identity,
                    "method": f"/{service.full_name}/{method.name}",
                }
                assert identity in found.message and method.name in found.message
    assert not wrong, "\n".join(wrong)


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
