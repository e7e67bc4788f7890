"""Secrets never reach the output, in any form we know, however the stream is cut."""

from __future__ import annotations

import base64
import urllib.parse

import pytest

from executor_service.runner.redaction import MIN_SECRET_LENGTH, Redactor, secret_forms

SECRET = "s3cr3t/p@ss word+ü"


def redact_in_pieces(secrets: list[str], data: bytes, cuts: list[int]) -> bytes:
    redactor = Redactor(secrets)
    out = []
    previous = 0
    for cut in [*cuts, len(data)]:
        out.append(redactor.feed(data[previous:cut]))
        previous = cut
    out.append(redactor.flush())
    return b"".join(out)


def all_encodings(secret: str) -> list[bytes]:
    raw = secret.encode()
    standard = base64.b64encode(raw)
    return [
        raw,
        standard,
        standard.rstrip(b"="),
        base64.urlsafe_b64encode(raw),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        urllib.parse.quote(raw, safe="").encode(),
        urllib.parse.quote(raw).encode(),
        urllib.parse.quote_plus(raw).encode(),
    ]


@pytest.mark.parametrize("form", range(8))
def test_every_form_is_redacted(form: int) -> None:
    encoded = all_encodings(SECRET)[form]
    out = redact_in_pieces([SECRET], b"before " + encoded + b" after\n", [])
    assert out == b"before *** after\n"


@pytest.mark.parametrize("offset", range(6))
def test_base64_of_secret_inside_a_larger_blob(offset: int) -> None:
    raw = SECRET.encode()
    blob = b"x" * offset + raw + b"trailing bytes"
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(blob)
        out = redact_in_pieces([SECRET], encoded, [])
        assert b"***" in out
        # At most 3 characters of the secret's encoding survive on either side.
        visible = len(out) - 3
        assert visible <= len(encode(b"x" * offset)) + len(encode(b"trailing bytes")) + 8


def test_split_at_every_position() -> None:
    data = b"log line, password=" + SECRET.encode() + b", done\n"
    expected = b"log line, password=***, done\n"
    for cut in range(len(data) + 1):
        assert redact_in_pieces([SECRET], data, [cut]) == expected, cut


def test_byte_by_byte() -> None:
    data = (b"a" + SECRET.encode() + b"b") * 3
    assert redact_in_pieces([SECRET], data, list(range(1, len(data)))) == b"a***b" * 3


def test_nothing_held_back_when_the_tail_cannot_start_a_secret() -> None:
    redactor = Redactor(["hunter22"])
    assert redactor.feed(b"progress 50%\n") == b"progress 50%\n"
    assert redactor.feed(b"almost hunt") == b"almost "
    assert redactor.feed(b"ing") == b"hunting"
    assert redactor.flush() == b""


def test_held_tail_released_at_flush() -> None:
    redactor = Redactor(["hunter22"])
    assert redactor.feed(b"x hunter2") == b"x "
    assert redactor.flush() == b"hunter2"


def test_longest_secret_wins_where_one_is_a_prefix_of_another() -> None:
    data = b"[password1] [pass]"
    expected = b"[***] [***]"
    for cut in range(len(data) + 1):
        assert redact_in_pieces(["pass", "password1"], data, [cut]) == expected


def test_overlapping_secrets_leftmost_first() -> None:
    assert redact_in_pieces(["abcd", "cdef"], b"xabcdefx", [4]) == b"x***efx"


def test_short_and_empty_secrets_are_ignored() -> None:
    short = "x" * (MIN_SECRET_LENGTH - 1)
    assert secret_forms(short) == set()
    assert secret_forms("") == set()
    redactor = Redactor([short, ""])
    assert not redactor.active
    assert redactor.feed(b"xxx yyy") == b"xxx yyy"


def test_no_secrets_passes_through() -> None:
    redactor = Redactor([])
    data = b"anything" * 1000
    assert redactor.feed(data) is data
    assert redactor.flush() == b""


def test_repeated_secret_and_adjacent_occurrences() -> None:
    data = b"tokentokentoken"
    assert redact_in_pieces(["token"], data, [3, 7, 11]) == b"*********"
