"""Stopping chains from outside: a client that cancels, an executor that shuts down.

Each running chain has a `ChainControl`. Its ``kill`` event is what the runner watches
(set → the running step's process tree is killed and the step is CANCELLED). The
`Lifecycle` holds every live control so a shutdown can first stop new steps from
starting (draining) and, once the grace is over, kill the steps still running.
"""

from __future__ import annotations

import enum

from executor_service.runner.kill_switch import KillSwitch


class StopReason(enum.Enum):
    CLIENT = "the client cancelled the stream"
    SHUTDOWN = "the executor is shutting down"


class Lifecycle:
    """The executor's state as far as chains care: serving, or draining for shutdown."""

    def __init__(self) -> None:
        self.draining = False
        self._controls: set[ChainControl] = set()

    def control(self) -> ChainControl:
        control = ChainControl(self)
        self._controls.add(control)
        return control

    def begin_drain(self) -> None:
        """No step starts from now on; running ones may finish."""
        self.draining = True

    def kill_all(self) -> None:
        """The grace is over: kill every running step."""
        for control in list(self._controls):
            control.stop(StopReason.SHUTDOWN)

    def _forget(self, control: ChainControl) -> None:
        self._controls.discard(control)

    @property
    def live(self) -> int:
        return len(self._controls)


class ChainControl:
    """Stops one chain: no further step starts, the running one is killed."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle
        self.kill = KillSwitch()
        self.reason: StopReason | None = None

    @property
    def draining(self) -> bool:
        return self._lifecycle.draining

    @property
    def stopped(self) -> bool:
        return self.reason is not None

    def stop(self, reason: StopReason) -> None:
        if self.reason is None:
            self.reason = reason
        self.kill.set()

    def release(self) -> None:
        """The chain is over."""
        self._lifecycle._forget(self)
