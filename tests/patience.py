"""Waiting in tests for a condition, never for the clock.

A test that sleeps a fixed while and then looks assumes the machine is fast enough; on a
busy one (CI, `make test-stress`) it fails for no fault of the product. Wait for what the
test needs instead, with a ceiling generous enough that only a real hang reaches it:
``PATIENCE`` seconds. Speed is measured in bench/, not here.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

_T = TypeVar("_T")

PATIENCE = 60.0  # seconds: the most any test waits for something that should happen
POLL = 0.05


async def eventually(
    condition: Callable[[], _T | Awaitable[_T]],
    what: str,
    *,
    timeout: float = PATIENCE,
    interval: float = POLL,
) -> _T:
    """Poll ``condition`` (plain or async) until it returns something true, and return
    that; fail the test naming ``what`` when ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        assert time.monotonic() < deadline, f"{what}: not after {timeout:g} s"
        await asyncio.sleep(interval)


def eventually_sync(
    condition: Callable[[], _T],
    what: str,
    *,
    timeout: float = PATIENCE,
    interval: float = POLL,
) -> _T:
    """`eventually` for code without an event loop (subprocess-driving e2e tests)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not after {timeout:g} s"
        time.sleep(interval)
