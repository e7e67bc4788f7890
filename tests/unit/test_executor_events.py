"""The event stream between a chain and its RPC: order, held-back events, the end."""

from __future__ import annotations

import asyncio

import pytest

from executor_service.chains.events import HELD_BACK_DEPTH, EventStream
from shared.stubs import executor_pb2


def _skipped(index: int) -> executor_pb2.StepSkippedEvent:
    return executor_pb2.StepSkippedEvent(step_index=index)


async def _read(stream: EventStream) -> list[executor_pb2.HookEvent]:
    return [event async for event in stream.events()]


async def test_a_held_back_event_waits_for_its_condition_and_keeps_its_place() -> None:
    stream = EventStream("run")
    synced = asyncio.get_running_loop().create_future()
    await stream.emit_after(synced, step_skipped=_skipped(0))  # returns at once
    await stream.emit_after(None, step_skipped=_skipped(1))  # after the one before it
    later = asyncio.ensure_future(stream.emit(step_skipped=_skipped(2)))
    await asyncio.sleep(0)
    assert not later.done()  # the plain emit waits its turn too
    synced.set_result(None)
    await later
    await stream.close()
    events = await _read(stream)
    assert [e.step_skipped.step_index for e in events] == [0, 1, 2]
    assert [e.sequence for e in events] == [1, 2, 3]


async def test_a_failed_condition_fails_the_next_emit_and_ends_the_stream_with_it() -> None:
    stream = EventStream("run")
    synced = asyncio.get_running_loop().create_future()
    await stream.emit_after(synced, step_skipped=_skipped(0))
    synced.set_exception(OSError("disk gone"))
    with pytest.raises(OSError):
        await stream.emit(step_skipped=_skipped(1))
    await stream.close()
    with pytest.raises(OSError, match="disk gone"):
        await _read(stream)


async def test_held_back_events_are_bounded() -> None:
    """A chain cannot run ahead of a slow disk or reader without limit: once
    HELD_BACK_DEPTH events are held back, the next waits for the first to be sent."""
    stream = EventStream("run")
    reading = asyncio.ensure_future(_read(stream))  # a reader keeps up: only the disk waits
    synced = asyncio.get_running_loop().create_future()
    await stream.emit_after(synced, step_skipped=_skipped(0))
    for index in range(1, HELD_BACK_DEPTH):
        await stream.emit_after(None, step_skipped=_skipped(index))
    one_more = asyncio.ensure_future(
        stream.emit_after(None, step_skipped=_skipped(HELD_BACK_DEPTH))
    )
    await asyncio.sleep(0)
    assert not one_more.done()
    synced.set_result(None)
    await one_more
    await stream.close()
    assert [e.step_skipped.step_index for e in await reading] == list(range(HELD_BACK_DEPTH + 1))


async def test_a_detached_stream_drops_held_back_events() -> None:
    stream = EventStream("run")
    synced = asyncio.get_running_loop().create_future()
    await stream.emit_after(synced, step_skipped=_skipped(0))
    stream.detach()
    synced.set_result(None)
    await stream.emit(step_skipped=_skipped(1))
    await stream.close()  # nobody reads: nothing waits on a full queue
