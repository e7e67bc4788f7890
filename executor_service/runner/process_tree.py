"""Every process a step started, and how they all end.

Killing the step's process group is not enough: a hook can leave it (``setsid``, a double
fork, ``nohup ... &``). So while a step runs, the tracker scans the process table every
``POLL_INTERVAL`` and attributes processes to the step; each scan starts from what the last
one found, so a process stays attributed after its parent dies. A process belongs to a step
when any of these holds:

* it is in the step's session or process group (the leader runs with ``start_new_session``,
  so both ids equal the leader's pid) — covers double forks that did not call setsid;
* it was attributed by an earlier scan (same pid *and* start time);
* it descends from a process that belongs;
* it is an orphan re-parented to the executor (a child subreaper, see
  ``executor_service.runner.subreaper``) whose initial environment carries the step's marker
  (``HOOKSHELF_EXECUTION_ID=<its id>``) — covers ``setsid`` children whose parent exited
  between two scans.

Known limit: a process that clears its environment (``env -i``), leaves the session and loses
its parent all within one scan interval is not found, so not killed. Zombies: the runner
reaps, by pid, what it attributes, and zombie children nobody claims for a while (see
``ProcessTracker._reap_strays``); never ``waitpid(-1)``, which would steal the leader's status
from the leader's watch (leader.py) or asyncio's child watcher.

One scan serves every running step: each step's poller asks the shared tracker to
``refresh``, which rescans only if the last scan is older than the interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import structlog

from executor_service.runner.process_table import (
    ProcessInfo,
    ProcessTable,
    own_children,
    read_environ,
    reap,
    send_signal,
)

POLL_INTERVAL = 0.1
# After SIGKILL, how long to keep sweeping (new children of dying processes, re-parented
# orphans to reap) before giving up on processes the kernel will not let die (state D).
KILL_SWEEP_SECONDS = 5.0
_SWEEP_PAUSE = 0.02
STRAY_ZOMBIE_AGE = 0.5

log = structlog.get_logger("hookshelf.executor.runner")


@dataclass(eq=False)
class StepTree:
    """The processes of one step: its leader and everything attributed to it."""

    leader: int
    # A lower bound of the leader's start time (taken just before its fork): anything in
    # its session or group that is older is a reused id, not ours.
    leader_start_time: int
    marker: bytes  # an environment entry unique to this step, NUL before and after
    members: dict[int, ProcessInfo] = field(default_factory=dict)

    def alive(self) -> list[ProcessInfo]:
        return [info for info in self.members.values() if not info.zombie]

    def attribute(
        self, table: ProcessTable, orphans: list[tuple[int, bytes]], other_leaders: set[int]
    ) -> None:
        """Recompute ``members`` from a fresh table (see the module docstring)."""
        seeds: list[int] = []
        # The session and group ids are the leader's pid; anything older than the leader
        # in them is a reused id, not ours.
        for pid in (
            self.leader,
            *table.by_session.get(self.leader, ()),
            *table.by_group.get(self.leader, ()),
        ):
            info = table.processes.get(pid)
            if info is not None and info.start_time >= self.leader_start_time:
                seeds.append(pid)
        for pid, known in self.members.items():
            info = table.processes.get(pid)
            if info is not None and info.start_time == known.start_time:
                seeds.append(pid)
        seeds += (pid for pid, environ in orphans if self.marker in environ)
        members: dict[int, ProcessInfo] = {}
        while seeds:
            pid = seeds.pop()
            info = table.processes.get(pid)
            if info is None or pid in members or pid in other_leaders:
                continue
            members[pid] = info
            seeds.extend(table.children.get(pid, ()))
        self.members = members


class ProcessTracker:
    """Shared by all steps of the process: one table scan per interval, however many steps."""

    def __init__(self) -> None:
        self._trees: set[StepTree] = set()
        self._scanned_at = float("-inf")
        # Orphans of ours already read: (pid, start_time) -> their initial environment.
        self._environ_cache: dict[tuple[int, int], bytes] = {}
        # Unattributed zombie children: (pid, start_time) -> when first seen (see _reap_strays).
        self._strays: dict[tuple[int, int], float] = {}
        self._spawning = 0
        self._first_leader_start: int | None = None

    @contextlib.contextmanager
    def spawning(self) -> Iterator[None]:
        """Wrap the start of a leader: until it is tracked, no zombie child is a stray."""
        self._spawning += 1
        try:
            yield
        finally:
            self._spawning -= 1

    def track(self, leader: int, marker: bytes, started_after: int) -> StepTree:
        """Start attributing processes to the step whose leader is ``leader``, forked
        after ``started_after`` (``start_time_now()`` taken before the fork)."""
        tree = StepTree(leader=leader, leader_start_time=started_after, marker=marker)
        self._trees.add(tree)
        if self._first_leader_start is None:
            self._first_leader_start = started_after
        return tree

    def untrack(self, tree: StepTree) -> None:
        self._trees.discard(tree)
        if not self._trees:
            self._environ_cache.clear()

    def refresh(self, max_age: float = POLL_INTERVAL) -> None:
        """Rescan and re-attribute every tracked step, unless the last scan is recent."""
        now = time.monotonic()
        if now - self._scanned_at < max_age:
            return
        self._scanned_at = now
        table = ProcessTable.scan()
        leaders = {tree.leader for tree in self._trees}
        orphans = self._orphans(table, leaders)
        for tree in list(self._trees):
            tree.attribute(table, orphans, leaders - {tree.leader})
        self._reap_zombies()
        self._reap_strays(table, leaders, now)

    def nothing_left_behind(self) -> bool:
        """True when no process of any finished step can be alive (nor a zombie to reap):
        this process has no child but the leaders of tracked steps.

        Sound because the executor is a subreaper: whatever a step started descends from
        its leader, and when the leader is gone its descendants are re-parented to us, so
        each of them is a child of ours or below one. Costs a few small reads instead of a
        scan, which makes the common end of a step (nothing left) cheap.
        """
        children = own_children()
        if children is None:
            return False  # cannot tell cheaply: the caller scans
        return not (children - {tree.leader for tree in self._trees})

    def rescan(self) -> None:
        """Scan now, whatever the age of the last scan (before and while killing)."""
        self.refresh(max_age=0.0)

    def _orphans(self, table: ProcessTable, leaders: set[int]) -> list[tuple[int, bytes]]:
        """Live children of this process other than step leaders, with their environment:
        re-parented orphans, since steps' leaders are the only children the runner makes."""
        found = []
        seen = set()
        for pid in table.children.get(os.getpid(), ()):
            info = table.processes[pid]
            if pid in leaders or info.zombie:
                continue
            key = (pid, info.start_time)
            seen.add(key)
            environ = self._environ_cache.get(key)
            if environ is None:
                # NUL-led, so a marker matches whole entries only (not FOO_HOOKSHELF_...).
                environ = self._environ_cache[key] = b"\0" + read_environ(pid)
            found.append((pid, environ))
        for key in self._environ_cache.keys() - seen:
            del self._environ_cache[key]
        return found

    def _reap_zombies(self) -> None:
        """Collect attributed zombies re-parented to us, so they do not pile up."""
        me = os.getpid()
        for tree in self._trees:
            for info in tree.members.values():
                if info.zombie and info.ppid == me and info.pid != tree.leader:
                    reap(info.pid)

    def _reap_strays(self, table: ProcessTable, leaders: set[int], now: float) -> None:
        """Collect zombie children nobody attributed: orphans of a step that died before any
        scan could see them alive (e.g. ``setsid -f true``), which would otherwise stay
        zombies for the life of the executor and, one per hook run, exhaust the pids.

        Careful not to steal the status of a child someone waits for (leader.py waits for
        step leaders, asyncio's watcher for any other subprocess of this process): only a zombie
        that is no tracked leader, was born after the first step started, and is still a
        zombie ``STRAY_ZOMBIE_AGE`` after first seen (a child asyncio or anyone else waits
        for is collected at once; a caller that leaves children unwaited for longer must not
        share its process with the runner), while no leader is being started.
        """
        me = os.getpid()
        attributed = {pid for tree in self._trees for pid in tree.members}
        current = {}
        for pid in table.children.get(me, ()):
            info = table.processes[pid]
            if not info.zombie or pid in leaders or pid in attributed:
                continue
            if self._first_leader_start is None or info.start_time < self._first_leader_start:
                continue
            key = (pid, info.start_time)
            first_seen = current[key] = self._strays.get(key, now)
            if now - first_seen >= STRAY_ZOMBIE_AGE and not self._spawning:
                reap(pid)
                del current[key]
        self._strays = current

    async def collect_strays(self) -> None:
        """Wait until the stray zombies seen so far are reaped (at most STRAY_ZOMBIE_AGE and a
        scan): a step that produced some does not end leaving them behind. Free when none."""
        deadline = time.monotonic() + STRAY_ZOMBIE_AGE + POLL_INTERVAL
        while self._strays and time.monotonic() < deadline:
            await asyncio.sleep(POLL_INTERVAL / 2)
            self.refresh(max_age=POLL_INTERVAL / 2)


TRACKER = ProcessTracker()


class Poller:
    """Keeps the tracked steps up to date while one runs (``stop`` when it ends).

    A timer rather than a task: most steps end before the first tick, and a timer costs
    less to set and cancel. The first tick is one interval away, so a step shorter than
    that costs no scan; what it left behind is found when it ends (see
    ProcessTracker.nothing_left_behind)."""

    def __init__(self, tracker: ProcessTracker | None = None) -> None:
        self._tracker = tracker or TRACKER
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(POLL_INTERVAL, self._tick)

    def stop(self) -> None:
        self._handle.cancel()

    def _tick(self) -> None:
        try:
            self._tracker.refresh()
        finally:  # a failed scan (logged by the loop) does not end the polling
            self._handle = self._loop.call_later(POLL_INTERVAL, self._tick)


def _signal_all(tree: StepTree, signum: int, *, group: bool) -> None:
    if group:
        # Atomic for the whole group, including processes forked since the last scan. The
        # group id cannot have been reused while a member (or the unreaped leader) holds it.
        try:
            os.killpg(tree.leader, signum)
        except (ProcessLookupError, PermissionError):
            pass
    for info in tree.alive():
        if group and info.pgrp == tree.leader:
            continue
        send_signal(info.pid, info.start_time, signum)


def _group_exists(tree: StepTree, leader_running: bool) -> bool:
    return leader_running or any(info.pgrp == tree.leader for info in tree.alive())


@dataclass(frozen=True)
class Termination:
    """What ending a step's processes took."""

    found: int  # processes of the step alive when it began (0: nothing to do)
    killed: bool  # SIGKILL was needed: something outlived the grace


async def terminate(
    tree: StepTree,
    grace: float,
    *,
    leader_running: bool,
    tracker: ProcessTracker | None = None,
) -> Termination:
    """SIGTERM (and SIGCONT, so stopped ones can act on it) to the step's group and every
    attributed process; wait up to ``grace`` for them all to go; SIGKILL what is left, and
    keep sweeping until nothing of the step is alive.

    Processes started during the grace (a trap handler's cleanup commands) are left to run
    until the grace ends. ``leader_running`` says asyncio has not yet collected the
    leader's status (so its pid, hence the group id, is still reserved).
    """
    tracker = tracker or TRACKER
    if not leader_running and tracker.nothing_left_behind():
        return Termination(found=0, killed=False)
    tracker.rescan()
    alive = tree.alive()
    if not alive and not leader_running:
        return Termination(found=0, killed=False)
    group = _group_exists(tree, leader_running)
    _signal_all(tree, signal.SIGTERM, group=group)
    _signal_all(tree, signal.SIGCONT, group=group)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        await asyncio.sleep(_SWEEP_PAUSE)
        tracker.rescan()
        if not tree.alive():
            return Termination(found=len(alive), killed=False)
    await kill(tree, tracker=tracker)
    return Termination(found=len(alive), killed=True)


async def kill(tree: StepTree, *, tracker: ProcessTracker | None = None) -> None:
    """SIGKILL everything attributed to the step, again and again until none is alive
    (a dying parent may have forked once more; orphans need re-parenting and reaping)."""
    tracker = tracker or TRACKER
    deadline = time.monotonic() + KILL_SWEEP_SECONDS
    while True:
        tracker.rescan()
        survivors = tree.alive()
        if not survivors:
            return
        if time.monotonic() > deadline:
            log.warning(
                "runner.unkillable_processes",  # uninterruptible sleep (state D)?
                pids=sorted(info.pid for info in survivors),
            )
            return
        _signal_all(tree, signal.SIGKILL, group=_group_exists(tree, False))
        await asyncio.sleep(_SWEEP_PAUSE)


def kill_now(tree: StepTree, *, tracker: ProcessTracker | None = None) -> None:
    """One synchronous SIGKILL round, for when waiting is no longer possible (cancelled
    again while terminating)."""
    tracker = tracker or TRACKER
    tracker.rescan()
    _signal_all(tree, signal.SIGKILL, group=_group_exists(tree, False))
