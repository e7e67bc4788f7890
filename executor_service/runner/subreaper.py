"""Make the executor a child subreaper (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``).

A hook may leave its process group (``setsid``) or double-fork; when the intermediate parent
exits, the kernel re-parents the orphan to the nearest subreaper ancestor instead of init.
With the executor as that ancestor, such orphans stay its children: the runner can still
find, kill and reap them (see ``executor_service.runner.process_tree``).

The service calls :func:`become_subreaper` once at start-up; ``run_step`` also calls it (it is
idempotent and cheap), so the guarantee holds for any caller of the runner.
"""

from __future__ import annotations

import ctypes
import os

from executor_service.runner.prctl import prctl

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


# The process that became one: nothing here unsets it, so one prctl per process is
# enough (a forked child does not inherit the attribute, hence the pid).
_became_in: int | None = None


def become_subreaper() -> None:
    """Mark this process as a child subreaper. Idempotent; raises OSError if refused."""
    global _became_in
    if _became_in == os.getpid():
        return
    prctl(PR_SET_CHILD_SUBREAPER, 1, "PR_SET_CHILD_SUBREAPER")
    _became_in = os.getpid()


def is_subreaper() -> bool:
    """Whether this process is currently a child subreaper."""
    flag = ctypes.c_int(0)
    # The kernel writes the flag through the pointer passed as the second argument.
    prctl(PR_GET_CHILD_SUBREAPER, ctypes.addressof(flag), "PR_GET_CHILD_SUBREAPER")
    return bool(flag.value)
