"""Telling a running step to stop, without a task per step waiting to be told."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class KillSwitch(asyncio.Event):
    """An ``asyncio.Event`` that also calls listeners when set: the runner watches it
    with a callback rather than a task waiting on it, one per step."""

    def __init__(self) -> None:
        super().__init__()
        self._listeners: list[Callable[[], None]] = []

    def set(self) -> None:
        if self.is_set():
            return
        super().set()
        for listener in list(self._listeners):
            listener()

    def listen(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` when set; returns what stops listening."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)
