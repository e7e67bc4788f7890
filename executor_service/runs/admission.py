"""The concurrency cap (HOOKSHELF_EXECUTOR_MAX_CONCURRENT_RUNS).

A slot is held by each chain a client asked for (BeginBackup's pre chain, EndBackup's
post chain, TestScript, RunInlineHooks, windows) from the request until the chain ends,
even when the client leaves early. A request over the cap is RESOURCE_EXHAUSTED before
anything starts. Post chains the executor owes on its own (ABORT, SKIP, client cancel,
lease expiry, restart) never wait for a slot and are never refused: a promise is not
subject to load.
"""

from __future__ import annotations

from shared.errors import ResourceExhausted


class Slot:
    """One admitted chain; release it (idempotent) when the chain ends."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._admission.active -= 1


class Admission:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def admit(self) -> Slot:
        if self.active >= self.limit:
            raise ResourceExhausted(
                f"the executor is running {self.active} chains, its limit "
                "(HOOKSHELF_EXECUTOR_MAX_CONCURRENT_RUNS); retry later",
                metadata={"limit": str(self.limit)},
            )
        self.active += 1
        return Slot(self)
