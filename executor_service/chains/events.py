"""The events of one RPC stream, between the chain that makes them and the RPC that
sends them.

Chains run in tasks of their own (a promise must not die with the RPC that asked for
it), so events travel through a small bounded queue: a slow reader makes `emit` wait, the
runner stops reading the child's pipe and the child blocks in write(). Memory stays flat.
When the reader goes away (the client cancelled or vanished) the stream is *detached*:
events are numbered but dropped, and the chain carries on.

An event may be *held back* until something is done (`emit_after`: a step's finished
event until its result is synced) without holding up the chain; the events after it wait
their turn, so the reader always gets them in order.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from shared.stubs import executor_pb2

# Events in flight per stream; at most 64 KiB each (output chunks), so ~0.5 MiB.
QUEUE_DEPTH = 8
# Events held back at once (`emit_after`): the finished events of steps whose results
# are not synced yet, and the started events behind them. A chain of quick steps runs
# ahead of a slow disk by this many events; one more waits, so a slow disk or a slow
# reader still slows the chain down instead of growing memory.
HELD_BACK_DEPTH = 16


class _End:
    """Marks the end of a stream; carries the error a broken chain ended with."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class EventStream:
    """Numbers events (+1 each), timestamps them and hands them to the reader."""

    def __init__(
        self, run_id: str = "", *, summary_base: executor_pb2.SummaryEvent | None = None
    ) -> None:
        self.run_id = run_id
        # Merged into the stream's summary: what every summary of the run says (where its
        # plans came from: summaries.plan_origin).
        self.summary_base = summary_base
        self._queue: asyncio.Queue[executor_pb2.HookEvent | _End] = asyncio.Queue(QUEUE_DEPTH)
        self._sequence = 0
        self._attached = True
        self._closed = False
        self._held_back: deque[asyncio.Task[None]] = deque()  # oldest first
        self.summaries = 0

    @classmethod
    def nowhere(cls, run_id: str = "") -> EventStream:
        """A stream nobody reads: a chain the executor runs on its own."""
        stream = cls(run_id)
        stream.detach()
        return stream

    @property
    def attached(self) -> bool:
        return self._attached

    async def emit(self, **event: Any) -> None:
        """Send one event, given as its oneof field (``plan=PlanEvent(...)``)."""
        if self._closed:
            raise RuntimeError("event after the end of the stream")
        if "summary" in event:
            self.summaries += 1
            if self.summaries > 1:
                raise RuntimeError("a stream has exactly one summary")
            if self.summary_base is not None:
                event["summary"].MergeFrom(self.summary_base)
        await self._after_held_back()
        self._sequence += 1
        if not self._attached:
            return
        await self._queue.put(self._event(event))

    async def emit_after(self, ready: Awaitable[Any] | None, **event: Any) -> None:
        """Send one event once ``ready`` is done (None: as soon as the events before it
        are sent), returning without waiting for that, unless HELD_BACK_DEPTH events are
        held back already. If ``ready`` fails, so does the next emit (or ``close``)."""
        if self._closed:
            raise RuntimeError("event after the end of the stream")
        while len(self._held_back) >= HELD_BACK_DEPTH:
            oldest = self._held_back[0]
            await asyncio.shield(oldest)
            if self._held_back and self._held_back[0] is oldest:
                self._held_back.popleft()
        self._sequence += 1
        message = self._event(event)  # stamped now: when it happened, not when it went
        previous = self._held_back[-1] if self._held_back else None
        self._held_back.append(asyncio.create_task(self._send_after(previous, ready, message)))

    async def _send_after(
        self,
        previous: asyncio.Task[None] | None,
        ready: Awaitable[Any] | None,
        message: executor_pb2.HookEvent,
    ) -> None:
        if previous is not None:
            await previous  # in order; raises what it raised
        if ready is not None:
            await ready
        if self._attached:
            await self._queue.put(message)

    async def _after_held_back(self) -> None:
        """Wait until every held-back event is sent (they go first); raise if one failed."""
        while self._held_back:
            # The last waits for those before it. Shielded: an emit cancelled here must not
            # cancel (and so lose) an event already promised to the reader.
            last = self._held_back[-1]
            await asyncio.shield(last)
            if self._held_back and self._held_back[-1] is last:
                self._held_back.clear()

    def _event(self, event: dict[str, Any]) -> executor_pb2.HookEvent:
        message = executor_pb2.HookEvent(run_id=self.run_id, sequence=self._sequence, **event)
        message.time.FromNanoseconds(time.time_ns())  # cheaper than GetCurrentTime
        return message

    async def emit_output(
        self, *, step_index: int, execution_id: str, stream: int, data: bytes, offset: int
    ) -> None:
        """An output event, built in place: the hot path (one per 64 KiB chunk) copies
        the data once instead of through an intermediate OutputEvent."""
        if self._closed:
            raise RuntimeError("event after the end of the stream")
        if self._held_back:
            await self._after_held_back()
        self._sequence += 1
        if not self._attached:
            return
        message = executor_pb2.HookEvent(run_id=self.run_id, sequence=self._sequence)
        message.time.FromNanoseconds(time.time_ns())
        output = message.output
        output.step_index = step_index
        output.execution_id = execution_id
        output.stream = stream  # type: ignore[assignment]  # stream is a plain int; the stub wants OutputStream.ValueType
        output.data = data
        output.offset = offset
        await self._queue.put(message)

    async def close(self, error: BaseException | None = None) -> None:
        """The last event was sent (or the chain broke with ``error``)."""
        if self._closed:
            return
        try:
            await self._after_held_back()
        except Exception as failure:  # noqa: BLE001 - a held-back event failed: the reader gets it
            error = error or failure
        self._closed = True
        if self._attached:
            await self._queue.put(_End(error))

    def detach(self) -> None:
        """The reader is gone: drop what is queued (unblocking a waiting emit) and
        everything after."""
        self._attached = False
        while not self._queue.empty():
            self._queue.get_nowait()

    async def events(self) -> AsyncIterator[executor_pb2.HookEvent]:
        """The events, in order, until the end; re-raises a broken chain's error."""
        while True:
            item = await self._queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item


async def relay(
    stream: EventStream, on_gone: Callable[[], None] | None = None
) -> AsyncIterator[executor_pb2.HookEvent]:
    """Read a stream for an RPC. If the RPC ends before the stream does (client cancel,
    deadline, disconnect: CancelledError or GeneratorExit here), detach and tell
    ``on_gone``; the exception then propagates as it must."""
    finished = False
    try:
        async for event in stream.events():
            yield event
        finished = True
    finally:
        if not finished:
            stream.detach()
            if on_gone is not None:
                on_gone()
