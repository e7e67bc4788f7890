"""Helpers for the role tests (no tests here): the tokens, and calling any RPC of a
service by name with an empty request, the way an unknown client would."""

from __future__ import annotations

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


def metadata_for(identity: str) -> tuple[tuple[str, str], ...]:
    header = IDENTITIES[identity]
    return () if header is None else (("authorization", header),)


async def call_empty(
    channel: grpc.aio.Channel, method: descriptor.MethodDescriptor, identity: str
) -> ErrorDetails | None:
    """Call ``method`` with an empty request as ``identity``: None when it succeeded,
    else what the error said. Streams are read to their end."""
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
