"""Moving one output stream of a step from its pipe to ``emit``: redacted, coalesced, captured.

Chunks are up to ``CHUNK_LIMIT`` bytes. Bytes are not sent as soon as they arrive but when a
chunk is full or ``FLUSH_DELAY`` after the first unsent byte, so a script printing a line at a
time costs a message per 50 ms at most, never one per line. End of stream flushes at once.

Backpressure: the pump awaits ``emit`` before reading again. While it waits, asyncio's pipe
reader stops reading once its buffer holds 2 * the stream limit, the kernel pipe fills and
the child blocks in write(): a slow consumer slows the child, and memory stays flat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from executor_service.runner.capture import HeadTailCapture
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
        reader: asyncio.StreamReader,
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
        self._pending = bytearray()
        self._offset = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        first_pending_at = 0.0
        while True:
            timeout = None
            if self._pending:
                timeout = max(0.0, first_pending_at + FLUSH_DELAY - loop.time())
            self.waiting_since = loop.time()
            try:
                async with asyncio.timeout(timeout):
                    # Never read more than fits in the chunk being built, so full chunks go
                    # out whole and the pending buffer stays within one chunk.
                    data = await self._reader.read(CHUNK_LIMIT - len(self._pending))
            except TimeoutError:
                self.waiting_since = None
                await self._send(len(self._pending))
                continue
            self.waiting_since = None
            if not data:
                break
            released = self._redactor.feed(data)
            if released:
                if not self._pending:
                    first_pending_at = loop.time()
                self._pending += released
                while len(self._pending) >= CHUNK_LIMIT:
                    await self._send(CHUNK_LIMIT)
                    first_pending_at = loop.time()
        self._pending += self._redactor.flush()
        while self._pending:
            await self._send(min(CHUNK_LIMIT, len(self._pending)))

    async def _send(self, size: int) -> None:
        data = bytes(self._pending[:size])
        del self._pending[:size]
        self.capture.add(data)
        chunk = OutputChunk(stream=self.stream, data=data, offset=self._offset)
        self._offset += len(data)
        # One emit at a time for both streams: the consumer need not be re-entrant.
        async with self._emit_lock:
            await self._emit(chunk)
