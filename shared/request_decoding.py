"""Requests that cannot be decoded are INVALID_ARGUMENT naming the field, not UNKNOWN.

protobuf refuses a proto3 ``string`` field that is not valid UTF-8 while decoding the
request, before any servicer runs, and grpc answers a deserializer that raises with
UNKNOWN and the Python exception text. Registered through ``add_service``, a service's
deserializers never raise: they hand the handler an ``UndecodableRequest``, which the
handler turns into InvalidArgument (naming the field, e.g. ``script.content``) for the
interceptor to map like any other bad input.

Generic over services: nothing here is specific to the library.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass

from shared.errors import InvalidArgument
from shared.request_budget import (
    Admitted,
    Refused,
    RequestBudget,
    RequestLimits,
    Ticket,
    over_budget,
    too_large,
)

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True)
class UndecodableRequest:
    """Stands in for a request whose bytes protobuf refused."""

    field: str
    description: str

    def error(self) -> InvalidArgument:
        return InvalidArgument(self.field, self.description)


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def find_bad_utf8(descriptor: Descriptor, data: bytes, prefix: str = "") -> str | None:
    """The path (``script.content``) of the first string field of ``data`` that is not
    valid UTF-8, walking the wire format; None when there is none or the bytes are not a
    well-formed message at all."""
    position = 0
    try:
        while position < len(data):
            key, position = _varint(data, position)
            number, wire_type = key >> 3, key & 7
            if wire_type == _VARINT:
                _, position = _varint(data, position)
            elif wire_type == _FIXED64:
                position += 8
            elif wire_type == _FIXED32:
                position += 4
            elif wire_type == _LENGTH_DELIMITED:
                length, position = _varint(data, position)
                chunk = data[position : position + length]
                position += length
                field = descriptor.fields_by_number.get(number)
                if field is None:
                    continue
                path = f"{prefix}{field.name}"
                if field.type == FieldDescriptor.TYPE_STRING:
                    try:
                        chunk.decode("utf-8")
                    except UnicodeDecodeError:
                        return path
                elif field.type == FieldDescriptor.TYPE_MESSAGE:
                    message_type = field.message_type
                    assert message_type is not None  # a message field always names its type
                    inner = find_bad_utf8(message_type, chunk)
                    if inner is not None:
                        # A map's entries are messages too: name the map, not "key".
                        if message_type.GetOptions().map_entry:
                            return path
                        return f"{path}.{inner}"
            else:
                return None  # groups are not proto3; anything else is garbage
    except ValueError:
        return None
    return None


def tolerant_deserializer(
    message_class: Any, budget: RequestBudget | None = None, *, method: str = "", ceiling: int = 0
) -> Callable[[bytes], Any]:
    """``message_class.FromString`` that returns an UndecodableRequest instead of raising;
    with a budget, a request over ``ceiling`` bytes or that does not fit in the budget is
    not parsed at all (`Refused`), and one that fits comes `Admitted` with its ticket."""

    def decode(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except DecodeError:
            field = find_bad_utf8(message_class.DESCRIPTOR, data)
            if field is not None:
                return UndecodableRequest(field, "is not valid UTF-8")
            return UndecodableRequest("request", "is not a well-formed protobuf message")

    if budget is None:
        return decode

    def deserialize(data: bytes) -> Any:
        if ceiling and len(data) > ceiling:
            return too_large(method, len(data), ceiling)
        ticket = budget.admit(len(data))
        if ticket is None:
            return over_budget(len(data), budget)
        return Admitted(decode(data), ticket)

    return deserialize


def _unwrap(request: Any) -> tuple[Any, Ticket | None]:
    """The request a handler gets and the ticket to give back when it is done; raises
    the error a refused or undecodable request stands for."""
    ticket = None
    if isinstance(request, Admitted):
        request, ticket = request.request, request.ticket
    if isinstance(request, (UndecodableRequest, Refused)):
        if ticket is not None:
            ticket.release()
        raise request.error()
    return request, ticket


def _guard_unary(method: Callable[..., Any]) -> Callable[..., Any]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        request, ticket = _unwrap(request)
        try:
            return await method(request, context)
        finally:
            if ticket is not None:
                ticket.release()

    return handler


def _guard_stream(method: Callable[..., Any]) -> Callable[..., Any]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        request, ticket = _unwrap(request)
        # A stream holds its request's bytes only until it has started: the request is
        # read at once, and a stream may last hours.
        if ticket is not None:
            ticket.release()
        result = method(request, context)
        if inspect.isasyncgen(result):
            async for item in result:
                yield item
        else:  # a coroutine that writes with context.write
            await result

    return handler


def add_service(
    server: grpc.aio.Server,
    servicer: object,
    service: ServiceDescriptor,
    budget: RequestBudget | None = None,
    limits: RequestLimits | None = None,
) -> None:
    """Registers ``servicer`` for ``service`` like the generated ``add_*_to_server``, with
    tolerant deserializers (request bytes bounded by ``limits`` and admitted against
    ``budget`` when given: request_budget.py). Unary and server-streaming methods only
    (the only kinds Hookshelf has)."""
    limits = limits or RequestLimits()
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in service.methods:
        request_class = GetMessageClass(method.input_type)
        response_class = GetMessageClass(method.output_type)
        implementation = getattr(servicer, method.name)
        make, guard = (
            (grpc.unary_stream_rpc_method_handler, _guard_stream)
            if method.server_streaming
            else (grpc.unary_unary_rpc_method_handler, _guard_unary)
        )
        handlers[method.name] = make(
            guard(implementation),
            request_deserializer=tolerant_deserializer(
                request_class, budget, method=method.name, ceiling=limits.ceiling(method.name)
            ),
            response_serializer=response_class.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    server.add_registered_method_handlers(service.full_name, handlers)
