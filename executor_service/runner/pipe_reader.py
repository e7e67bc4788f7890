"""Reading a pipe in the pieces the OS hands over, with flow control.

Rather than ``asyncio.StreamReader``, which copies every byte into a buffer and out again,
this protocol keeps the ``bytes`` objects the transport read (up to 256 KiB each) and gives
them out as they are: at a gigabyte of output that halves the copying.

Flow control: past ``HIGH_WATER`` buffered bytes the transport stops reading; the kernel pipe
then fills and the writer blocks. Reading resumes below ``LOW_WATER``.
"""

from __future__ import annotations

import asyncio
from collections import deque

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class PipeReader(asyncio.Protocol):
    """Protocol for ``loop.connect_read_pipe``; ``read`` returns the next piece, b"" at EOF."""

    def __init__(self) -> None:
        self._pieces: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.ReadTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.ReadTransport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._pieces.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and not self._paused and self._transport is not None:
            self._transport.pause_reading()
            self._paused = True
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        # Also reached when the runner closes the transport itself: that reads as EOF.
        self._eof = True
        self._wake()

    async def read(self) -> bytes:
        """The next piece of data, waiting for it; b"" once the pipe is at its end."""
        while not self._pieces:
            if self._eof:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        piece = self._pieces.popleft()
        self._buffered -= len(piece)
        if self._paused and self._buffered <= LOW_WATER and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return piece

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
