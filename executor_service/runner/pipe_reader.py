"""Reading a pipe in the pieces the OS hands over, with flow control.

Straight on the event loop's selector (``add_reader`` and a non-blocking ``os.read``), not
through ``connect_read_pipe``: a transport and its protocol cost a connection hand-shake of
several loop iterations per pipe, which for a hook that exits at once is a noticeable part
of the step. Rather than ``asyncio.StreamReader``, which copies every byte into a buffer
and out again, the reader keeps the ``bytes`` objects ``os.read`` returned (up to 256 KiB
each) and gives them out as they are: at a gigabyte of output that halves the copying.

Flow control: past ``HIGH_WATER`` buffered bytes the reader stops watching the pipe; the
kernel pipe then fills and the writer blocks. Watching resumes below ``LOW_WATER``.

``on_change`` is called (in the loop) when data arrives or the end is reached: the step
starts a stream's pump only once there is something to pump, so a hook that prints
nothing costs no task.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
READ_SIZE = 256 * 1024  # as asyncio's pipe transport reads


class PipeReader:
    """Owns the read end ``fd`` of a pipe from construction until ``close``. ``read``
    returns the next piece, b"" at the end (EOF, or ``close`` after what was buffered)."""

    def __init__(self, fd: int, on_change: Callable[[], None] = lambda: None) -> None:
        os.set_blocking(fd, False)  # our end only: the writer's end is its own description
        self._fd = fd
        self._on_change = on_change
        self._loop = asyncio.get_running_loop()
        self._pieces: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._watching = False
        self._waiter: asyncio.Future[None] | None = None
        self._watch()

    @property
    def closed(self) -> bool:
        """At its end: EOF seen or ``close`` called (buffered pieces may remain)."""
        return self._eof

    @property
    def has_data(self) -> bool:
        """Pieces are buffered, not yet taken by ``read``."""
        return bool(self._pieces)

    def close(self) -> None:
        """Stop reading and close the descriptor; ``read`` then drains what is buffered
        and returns b"". Idempotent."""
        if self._eof:
            return
        self._eof = True
        self._unwatch()
        os.close(self._fd)
        self._wake()
        self._on_change()

    async def read(self) -> bytes:
        """The next piece of data, waiting for it; b"" once the pipe is at its end."""
        while not self._pieces:
            if self._eof:
                return b""
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        piece = self._pieces.popleft()
        self._buffered -= len(piece)
        if not self._eof and not self._watching and self._buffered <= LOW_WATER:
            self._watch()
        return piece

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return  # woken for nothing
        except OSError:
            data = b""  # a broken pipe reads as its end
        if not data:
            self.close()
            return
        self._pieces.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER:
            self._unwatch()
        self._wake()
        self._on_change()

    def _watch(self) -> None:
        self._loop.add_reader(self._fd, self._on_readable)
        self._watching = True

    def _unwatch(self) -> None:
        if self._watching:
            self._loop.remove_reader(self._fd)
            self._watching = False

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
