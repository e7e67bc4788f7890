"""Helpers for the role tests (no tests here): the tokens, calling any RPC of a
service by name with an empty request, the way an unknown client would, and the one
statement of which cell of the matrix (RPC × caller) expects which code."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import grpc
from google.protobuf import descriptor

from shared.error_details import ErrorDetails, details_of
from shared.stubs import executor_pb2, library_pb2

TOKENS = {"admin": "tok-admin", "executor": "tok-executor", "reader": "tok-reader"}
TOKEN_SETTINGS = {
    "auth_token": TOKENS["admin"],
    "executor_token": TOKENS["executor"],
    "reader_token": TOKENS["reader"],
}
# Who calls: a role's token, no header at all, a token nobody configured.
IDENTITIES = {
    **{role: f"Bearer {t}" for role, t in TOKENS.items()},
    "none": None,
    "wrong": "Bearer x",
}

LIBRARY = library_pb2.DESCRIPTOR.services_by_name["ScriptLibraryService"]
EXECUTOR = executor_pb2.DESCRIPTOR.services_by_name["HookExecutorService"]


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

# A caller of the matrix: one method's call with an empty request as that caller,
# answering None when it succeeded, else what the error said.
Call = Callable[[descriptor.MethodDescriptor], Awaitable[ErrorDetails | None]]


async def check_every_cell(
    service: descriptor.ServiceDescriptor,
    callers: dict[str, Call],
    *,
    no_role: Iterable[str] = (),
) -> None:
    """Call every RPC of ``service`` as every caller and check each cell's code: a caller
    named after a role must get past the role check exactly where MAY_CALL (or admin)
    says, and be PERMISSION_DENIED with ROLE_NOT_ALLOWED elsewhere; the callers named in
    ``no_role`` hold no identity and must be UNAUTHENTICATED everywhere. Requests are
    empty, so an allowed call may still fail validation: that is not a refusal."""
    unauthenticated = set(no_role)
    wrong: list[str] = []
    for method in service.methods:
        for identity, call in callers.items():
            found = await call(method)
            code = found.code if found else grpc.StatusCode.OK
            cell = f"{method.name} as {identity}: {code.name}"
            if identity in unauthenticated:
                if code != grpc.StatusCode.UNAUTHENTICATED:
                    wrong.append(cell)
            elif identity == "admin" or method.name in MAY_CALL[identity]:
                if code in REFUSED:
                    wrong.append(f"{cell} ({found.message if found else ''})")
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


def metadata_for(identity: str) -> tuple[tuple[str, str], ...]:
    header = IDENTITIES[identity]
    return () if header is None else (("authorization", header),)


async def call_empty(
    channel: grpc.aio.Channel, method: descriptor.MethodDescriptor, identity: str
) -> ErrorDetails | None:
    """Call ``method`` with an empty request as ``identity`` (the header of IDENTITIES;
    "none" sends none, for a caller that a client certificate names): None when it
    succeeded, else what the error said. Streams are read to their end."""
    module = library_pb2 if method.containing_service is LIBRARY else executor_pb2
    request = getattr(module, method.input_type.name)()
    path = f"/{method.containing_service.full_name}/{method.name}"
    serialize = type(request).SerializeToString
    try:
        if method.server_streaming:
            call = channel.unary_stream(path, request_serializer=serialize)(
                request, metadata=metadata_for(identity), timeout=20
            )
            async for _ in call:
                pass
        else:
            await channel.unary_unary(path, request_serializer=serialize)(
                request, metadata=metadata_for(identity), timeout=20
            )
    except grpc.aio.AioRpcError as error:
        return details_of(error)
    return None


def header_callers(channel: grpc.aio.Channel, identities: Iterable[str]) -> dict[str, Call]:
    """A matrix caller for each identity, sending its header (IDENTITIES) on ``channel``."""

    def caller(identity: str) -> Call:
        return lambda method: call_empty(channel, method, identity)

    return {identity: caller(identity) for identity in identities}
