"""Moving one output stream of a step from its pipe to ``emit``: redacted, coalesced, captured.

Chunks are up to ``CHUNK_LIMIT`` bytes. Bytes are not sent as soon as they arrive but when a
chunk is full or ``FLUSH_DELAY`` after the first unsent byte, so a script printing a line at a
time costs a message per 50 ms at most, never one per line. End of stream flushes at once.

Backpressure: the pump awaits ``emit`` before reading again. While it waits, the pipe reader
stops reading past its high-water mark (see ``pipe_reader``), the kernel pipe fills and the
child blocks in write(): a slow consumer slows the child, and memory stays flat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from executor_service.runner.capture import HeadTailCapture
from executor_service.runner.pipe_reader import PipeReader
from executor_service.runner.redaction import Redactor

CHUNK_LIMIT = 64 * 1024
FLUSH_DELAY = 0.05


@dataclass(frozen=True)
class OutputChunk:
    """A piece of one stream as sent to the client."""

    stream: int  # executor_pb2.OUTPUT_STREAM_STDOUT (1) or OUTPUT_STREAM_STDERR (2)
    data: bytes  # redacted
    offset: int  # byte offset of data within its (redacted) stream


Emit = Callable[[OutputChunk], Awaitable[None]]


class OutputPump:
    """Reads one stream to its end. ``run`` is the task body; ``waiting_since`` tells the step
    whether the pump is idle on the pipe (as opposed to busy in ``emit``)."""

    def __init__(
        self,
        stream: int,
        reader: PipeReader,
        emit: Emit,
        emit_lock: asyncio.Lock,
        secrets: tuple[str, ...],
    ) -> None:
        self.stream = stream
        self.capture = HeadTailCapture()
        self.waiting_since: float | None = None
        self._reader = reader
        self._emit = emit
        self._emit_lock = emit_lock
        self._redactor = Redactor(secrets)
        self._pending = bytearray()  # less than one chunk, waiting for more or the delay
        self._pending_since = 0.0
        self._offset = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.waiting_since = loop.time()
            if self._pending:
                delay = max(0.0, self._pending_since + FLUSH_DELAY - loop.time())
                try:
                    async with asyncio.timeout(delay):
                        data = await self._reader.read()
                except TimeoutError:
                    self.waiting_since = None
                    await self._send_pending()
                    continue
            else:
                data = await self._reader.read()
            self.waiting_since = None
            if not data:
                break
            await self._take(self._redactor.feed(data))
        await self._take(self._redactor.flush())
        await self._send_pending()

    async def _take(self, data: bytes) -> None:
        """Send what makes full chunks now; keep the rest pending."""
        if not data:
            return
        view = memoryview(data)
        if self._pending:
            room = CHUNK_LIMIT - len(self._pending)
            self._pending += view[:room]
            view = view[room:]
            if len(self._pending) < CHUNK_LIMIT:
                return
            await self._send_pending()
        # Full chunks straight from the piece read: one copy, no detour through _pending.
        while len(view) >= CHUNK_LIMIT:
            await self._send(bytes(view[:CHUNK_LIMIT]))
            view = view[CHUNK_LIMIT:]
        if view:
            self._pending += view
            self._pending_since = asyncio.get_running_loop().time()

    async def _send_pending(self) -> None:
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            await self._send(data)

    async def _send(self, data: bytes) -> None:
        self.capture.add(data)
        chunk = OutputChunk(stream=self.stream, data=data, offset=self._offset)
        self._offset += len(data)
        # One emit at a time for both streams: the consumer need not be re-entrant.
        async with self._emit_lock:
            await self._emit(chunk)
