"""Bounded capture of one output stream: the first bytes and the last bytes, nothing between.

What is kept for the record (``CapturedOutput`` in the library's ``Execution``): ``head`` holds
the first ``HEAD_LIMIT`` bytes; ``tail`` the last bytes after the head, at most
``TAIL_LIMIT`` (empty while the head can hold everything); ``truncated`` says bytes between
them were dropped. Memory stays within HEAD_LIMIT + TAIL_LIMIT + one piece whatever the volume.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

HEAD_LIMIT = 64 * 1024
TAIL_LIMIT = 64 * 1024


@dataclass(frozen=True)
class CapturedOutput:
    """What was kept of one stream (the bytes are already redacted)."""

    head: bytes
    tail: bytes
    total_bytes: int
    truncated: bool

    @property
    def text(self) -> str:
        """head + tail decoded leniently, for logs and tests; not the full output if truncated."""
        return (self.head + self.tail).decode("utf-8", "replace")


class HeadTailCapture:
    """Accumulates a stream into a bounded head and tail.

    The tail holds references to the last pieces added rather than copying them (they are
    immutable), and is only joined and cut in ``result``."""

    def __init__(self, head_limit: int = HEAD_LIMIT, tail_limit: int = TAIL_LIMIT) -> None:
        self._head_limit = head_limit
        self._tail_limit = tail_limit
        self._head = bytearray()
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self._total = 0

    def add(self, data: bytes) -> None:
        self._total += len(data)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
            if not data:
                return
        self._tail.append(data)
        self._tail_size += len(data)
        # Drop whole pieces that the rest of the tail already makes unnecessary.
        while self._tail_size - len(self._tail[0]) >= self._tail_limit:
            self._tail_size -= len(self._tail.popleft())

    def result(self) -> CapturedOutput:
        tail = b"".join(self._tail)[-self._tail_limit :] if self._tail else b""
        kept = len(self._head) + len(tail)
        return CapturedOutput(
            head=bytes(self._head),
            tail=tail,
            total_bytes=self._total,
            truncated=kept < self._total,
        )
