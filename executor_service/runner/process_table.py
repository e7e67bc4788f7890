"""A snapshot of the machine's process table, read from ``/proc``, and pid-safe signalling.

Read directly rather than through psutil because the runner scans often (every
``POLL_INTERVAL`` while steps run) and needs only ``/proc/<pid>/stat``: one read per process,
about a millisecond for a hundred processes.

A pid alone is not an identity (pids are reused), so every process is known by
``(pid, start_time)``; signals go through a pidfd opened and then checked against the start
time, which rules out hitting a newcomer that took a dead process's pid.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import NamedTuple


class ProcessInfo(NamedTuple):
    pid: int
    state: str  # one letter, as in /proc/<pid>/stat: R, S, D, Z (zombie), T, ...
    ppid: int
    pgrp: int
    session: int
    start_time: int  # clock ticks after boot; with pid, identifies the process

    @property
    def zombie(self) -> bool:
        return self.state in ("Z", "X")


def read_process(pid: int) -> ProcessInfo | None:
    """The current stat of one process, or None if it is gone."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name (field 2) is in parentheses and may contain anything, including ") ".
    fields = data[data.rindex(b")") + 2 :].split(None, 20)
    return ProcessInfo(
        pid=pid,
        state=fields[0].decode(),
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        session=int(fields[3]),
        start_time=int(fields[19]),
    )


_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def start_time_now() -> int:
    """The start time (``/proc/<pid>/stat`` field 22: clock ticks of CLOCK_BOOTTIME, as the
    kernel counts it) a process forked at this instant would get, or a tick less. Taken
    just before a fork, it is a lower bound of the child's start time that costs no read
    of ``/proc`` — a read that, right after the fork, waits for the child's exec."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) * _TICKS_PER_SECOND // 1_000_000_000


class ProcessTable:
    """Every process at one instant, with the indexes the tracker needs."""

    def __init__(self, processes: dict[int, ProcessInfo]) -> None:
        self.processes = processes
        self.children: dict[int, list[int]] = {}
        self.by_session: dict[int, list[int]] = {}
        self.by_group: dict[int, list[int]] = {}
        for info in processes.values():
            self.children.setdefault(info.ppid, []).append(info.pid)
            self.by_session.setdefault(info.session, []).append(info.pid)
            self.by_group.setdefault(info.pgrp, []).append(info.pid)

    @classmethod
    def scan(cls) -> ProcessTable:
        processes = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                info = read_process(int(name))
                if info is not None:
                    processes[info.pid] = info
        return cls(processes)


_CHILDREN_READ = 64 * 1024


def own_children() -> set[int] | None:
    """Pids of the direct children (zombies included) of this process's main thread and
    of the calling thread, from their ``/proc/self/task/<tid>/children`` lists: far
    cheaper than a scan of the whole table, and cheaper than reading every thread's list
    (gRPC and the thread pools add a dozen threads).

    Those two lists hold every child the runner cares about: a step's leader is a child
    of the thread that started it, the one running the event loop; and an orphan is
    re-parented to a subreaper's first live thread, its main thread (the kernel's
    ``find_alive_thread`` walks the threads from the group leader). Each list is read in
    one go, so it is a consistent snapshot of that thread's children. None when the kernel
    does not offer the lists (CONFIG_PROC_CHILDREN)."""
    children: set[int] = set()
    read_any = False
    for task in {os.getpid(), threading.get_native_id()}:
        try:
            fd = os.open(f"/proc/self/task/{task}/children", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue  # no such file at all (or, for the main thread, it has ended)
        try:
            data = os.read(fd, _CHILDREN_READ)
        finally:
            os.close(fd)
        if len(data) == _CHILDREN_READ:
            return None  # thousands of children: a partial read would not be a snapshot
        read_any = True
        children.update(int(pid) for pid in data.split())
    return children if read_any else None


def read_environ(pid: int) -> bytes:
    """A process's initial environment (NUL-separated), or b"" if unreadable or a zombie."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def send_signal(pid: int, start_time: int, signum: int) -> bool:
    """Signal the process ``(pid, start_time)`` if it is still that process. True if sent."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except OSError:
        # No pidfd support: fall back to a check-then-kill with a tiny reuse window.
        info = read_process(pid)
        if info is None or info.start_time != start_time:
            return False
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return False
        return True
    try:
        # The pidfd pins the process it was opened on: if that is still ours, so is the signal.
        info = read_process(pid)
        if info is None or info.start_time != start_time:
            return False
        signal.pidfd_send_signal(pidfd, signum)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(pidfd)


def reap(pid: int) -> bool:
    """Collect the exit status of a zombie child of ours. True if it was reaped.

    Only ever called with a specific pid known to belong to a step and never with the
    step's own leader, whose watch (leader.py) waits for it: ``waitpid(-1)`` would steal
    statuses from it.
    """
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return reaped == pid
