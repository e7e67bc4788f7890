"""Bounded head/tail capture of one stream."""

from __future__ import annotations

from executor_service.runner.capture import HEAD_LIMIT, TAIL_LIMIT, HeadTailCapture


def feed(capture: HeadTailCapture, data: bytes, piece: int) -> None:
    for start in range(0, len(data), piece):
        capture.add(data[start : start + piece])


def test_small_output_is_all_head() -> None:
    capture = HeadTailCapture()
    capture.add(b"hello\n")
    result = capture.result()
    assert (result.head, result.tail, result.total_bytes, result.truncated) == (
        b"hello\n",
        b"",
        6,
        False,
    )


def test_exactly_head_plus_tail_is_not_truncated() -> None:
    data = bytes(range(256)) * ((HEAD_LIMIT + TAIL_LIMIT) // 256)
    capture = HeadTailCapture()
    feed(capture, data, 1000)
    result = capture.result()
    assert result.head + result.tail == data
    assert not result.truncated


def test_long_output_keeps_first_and_last_bytes() -> None:
    data = b"H" * HEAD_LIMIT + b"middle" * 100_000 + b"T" * TAIL_LIMIT
    for piece in (7, 4096, 65536, 200_000, len(data)):
        capture = HeadTailCapture()
        feed(capture, data, piece)
        result = capture.result()
        assert result.head == b"H" * HEAD_LIMIT
        assert result.tail == b"T" * TAIL_LIMIT
        assert result.total_bytes == len(data)
        assert result.truncated


def test_small_limits() -> None:
    capture = HeadTailCapture(head_limit=3, tail_limit=4)
    feed(capture, b"abcdefghijklmnop", 1)
    result = capture.result()
    assert (result.head, result.tail, result.total_bytes, result.truncated) == (
        b"abc",
        b"mnop",
        16,
        True,
    )
