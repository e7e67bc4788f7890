"""Keep hooks out of the executor's own process: not dumpable.

Hooks run as the executor's user. A dumpable process's ``/proc/<pid>/environ``, ``mem``,
``fd/`` and ``maps`` are open to every process of the same user, so a hook could read the
executor's tokens and journal key from its environment or its memory. A process that is
not dumpable has those files owned by root, and ptrace and ``process_vm_readv`` refused to
anyone without CAP_SYS_PTRACE. A hook's own process is dumpable again after its exec:
nothing of the executor's reaches it but the environment built for it (environment.py).
"""

from __future__ import annotations

from executor_service.runner.prctl import prctl

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def make_undumpable() -> None:
    """Set this process not dumpable (also disables its core dumps). Idempotent."""
    prctl(PR_SET_DUMPABLE, 0, "PR_SET_DUMPABLE")


def is_dumpable() -> bool:
    return prctl(PR_GET_DUMPABLE, 0, "PR_GET_DUMPABLE") != 0
