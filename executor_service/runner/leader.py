"""Starting a step's leader process and learning when it exits, without asyncio's child
watcher.

Python 3.11's default watcher (``ThreadedChildWatcher``) starts a thread per child to block
in ``waitpid``, and ``asyncio.create_subprocess_exec`` wraps the child in a transport and a
protocol the runner does not use (it owns the pipes, see step.py). For a hook that exits at
once that machinery costs more than the fork and exec. Here the child is started with
``subprocess.Popen`` (vfork + exec) and watched through a pidfd in the event loop: readable
when the child has exited, then reaped with ``waitpid(pid)`` — by pid, never ``-1``, so no
other watcher's child is touched, and no process-wide setting (``set_child_watcher``)
changes. The pid cannot be reused before that ``waitpid``: it is our unreaped child, and
the process tracker never reaps a tracked leader (process_tree.py).

Without pidfds (Linux < 5.3) the exit is awaited by ``waitpid`` in the loop's default
thread pool instead.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

# The child's stdin; opened once (close-on-exec in this process, dup'd onto fd 0 in the
# child) rather than once per step as subprocess.DEVNULL would.
_devnull: int | None = None


def _stdin() -> int:
    global _devnull
    if _devnull is None:
        _devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return _devnull


class Leader:
    """A started leader: ``pid``, ``returncode`` (None until reaped; the exit code, or
    minus the signal number) and ``wait()``."""

    def __init__(self, popen: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self.pid = popen.pid
        self.returncode: int | None = None
        self._popen = popen  # kept so it is never finalised (and polled) unreaped
        self._loop = loop
        self._exited: asyncio.Future[int] = loop.create_future()
        try:
            self._pidfd: int | None = os.pidfd_open(self.pid)
        except OSError:
            self._pidfd = None
            loop.run_in_executor(None, self._blocking_wait)
        else:
            loop.add_reader(self._pidfd, self._on_pidfd)

    @property
    def exited(self) -> asyncio.Future[int]:
        """Done with the returncode once the leader has exited; to watch (asyncio.wait,
        shield), never to cancel."""
        return self._exited

    async def wait(self) -> int:
        """The leader's returncode once it has exited. Cancelling the caller does not stop
        the watch."""
        return await asyncio.shield(self._exited)

    def _on_pidfd(self) -> None:
        assert self._pidfd is not None
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, None  # reaped by someone else: the status is lost
        if pid == 0:
            return  # not exited after all: keep watching
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self._reaped(status)

    def _blocking_wait(self) -> None:
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            status = None
        self._loop.call_soon_threadsafe(self._reaped, status)

    def _reaped(self, status: int | None) -> None:
        # 255 for a lost status, as asyncio's watchers report it.
        self.returncode = 255 if status is None else os.waitstatus_to_exitcode(status)
        self._popen.returncode = self.returncode
        if not self._exited.done():
            self._exited.set_result(self.returncode)


def start_leader(
    argv: list[str], environment: dict[str, str], cwd: Path, stdout: int, stderr: int
) -> Leader:
    """Start the leader in a session of its own, stdin from /dev/null, ``stdout`` and
    ``stderr`` on the given descriptors, no other descriptor inherited. Raises OSError
    when it cannot start (as Popen does)."""
    popen = subprocess.Popen(
        argv,
        stdin=_stdin(),
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env=environment,
        start_new_session=True,
        close_fds=True,
    )
    return Leader(popen, asyncio.get_running_loop())
