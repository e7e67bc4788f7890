"""Bounded capture of one output stream: the first bytes and the last bytes, nothing between.

What is kept for the record (``CapturedOutput`` in the library's ``Execution``): ``head`` holds
the first ``HEAD_LIMIT`` bytes; ``tail`` the last bytes after the head, at most
``TAIL_LIMIT`` (empty while the head can hold everything); ``truncated`` says bytes between
them were dropped. Memory stays at most HEAD_LIMIT + 2 * TAIL_LIMIT whatever the volume.
"""

from __future__ import annotations

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
    """Accumulates a stream into a bounded head and tail."""

    def __init__(self, head_limit: int = HEAD_LIMIT, tail_limit: int = TAIL_LIMIT) -> None:
        self._head_limit = head_limit
        self._tail_limit = tail_limit
        self._head = bytearray()
        self._tail = bytearray()
        self._total = 0

    def add(self, data: bytes) -> None:
        self._total += len(data)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data:
            return
        if len(data) >= self._tail_limit:
            self._tail = bytearray(data[-self._tail_limit :])
            return
        self._tail += data
        excess = len(self._tail) - self._tail_limit
        if excess > 0:
            del self._tail[:excess]

    def result(self) -> CapturedOutput:
        kept = len(self._head) + len(self._tail)
        return CapturedOutput(
            head=bytes(self._head),
            tail=bytes(self._tail),
            total_bytes=self._total,
            truncated=kept < self._total,
        )
