"""Finding the field of a request that is not valid UTF-8 (api.request_decoding)."""

from __future__ import annotations

from shared.request_decoding import (
    UndecodableRequest,
    find_bad_utf8,
    tolerant_deserializer,
)
from shared.stubs import library_pb2


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_names_a_nested_string_field() -> None:
    data = _field(1, _field(2, b"ok") + _field(5, b"\xff")) + _field(2, b"req")
    assert find_bad_utf8(library_pb2.CreateScriptRequest.DESCRIPTOR, data) == "script.content"


def test_names_a_map_not_its_entry() -> None:
    entry = _field(1, b"KEY") + _field(2, b"\xc3")
    data = _field(1, _field(11, entry))
    assert (
        find_bad_utf8(library_pb2.AssignScriptRequest.DESCRIPTOR, data)
        == "assignment.parameter_values"
    )


def test_valid_or_garbled_bytes_name_nothing() -> None:
    assert find_bad_utf8(library_pb2.CreateScriptRequest.DESCRIPTOR, _field(3, b"me")) is None
    assert find_bad_utf8(library_pb2.CreateScriptRequest.DESCRIPTOR, b"\x0a\xff") is None


def test_the_deserializer_never_raises() -> None:
    deserialize = tolerant_deserializer(library_pb2.CreateScriptRequest)

    assert deserialize(_field(3, b"me")) == library_pb2.CreateScriptRequest(author="me")
    assert deserialize(_field(3, b"\xff")) == UndecodableRequest("author", "is not valid UTF-8")
    assert deserialize(b"\x0a\x7f") == UndecodableRequest(
        "request", "is not a well-formed protobuf message"
    )
