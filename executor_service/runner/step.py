"""Running one step — one hook script — as a child process, to its end, whatever happens.

``run_step`` writes the script into the script slot of a fresh working directory, starts it
in its own session with an environment built from scratch and stdin from /dev/null, streams
its output while it runs, and returns a ``StepResult``. A step that fails, cannot start, times out or is
cancelled through ``cancel`` is a result, not an exception.

Decisions (see also the docstrings of the modules this one uses):

* **Interpreter.** Content starting with ``#!`` is exec'd directly so the kernel honours the
  shebang; anything else runs as ``/bin/bash <script>``.
* **Status.** Exit 0 → SUCCEEDED, 75 → SKIP_REQUESTED, anything else (a signal included) →
  FAILED; timeout → TIMED_OUT; ``cancel`` set → CANCELLED. A timed-out or cancelled step
  keeps the output it produced.
* **exit_code** is the leader's status as Python reports it: the exit code, or minus the
  signal number when a signal ended it (so a step killed at its timeout usually has -15 or
  -9; a script that traps SIGTERM and exits reports its own code). A script that cannot
  start has 127 when the file or its interpreter is missing, 126 otherwise (the shell's
  conventions), with ``error_message`` saying why.
* **No process outlives its step.** At timeout or cancel: SIGTERM to the group and every
  process attributed to the step, ``kill_grace_seconds``, SIGKILL (see ``process_tree``).
  When the leader exits on its own, background processes it left behind (``nohup x &``,
  ``setsid``) are ended the same way and the step's status is unchanged (a warning says so):
  a hook must not leave processes running between the steps of a backup.
* **Task cancellation** (``asyncio.CancelledError``) ends the processes the same way, then
  re-raises; cancelled again during the grace, it SIGKILLs at once. An exception from
  ``emit`` does the same and propagates.
* **HOME** is the fresh working directory unless a variable or parameter sets ``HOME``.
* **Output variables** are read from ``$HOOKSHELF_OUTPUT`` however the step ended; the caller
  decides whether a failed step's variables count.
* **emit** is awaited for every chunk, one call at a time, chunks of each stream in order;
  while it waits, the step's output is not read (backpressure). It must not block forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import math
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

from executor_service.runner.capture import CapturedOutput
from executor_service.runner.kill_switch import KillSwitch
from executor_service.runner.leader import Leader, start_leader
from executor_service.runner.output import Emit, OutputChunk, OutputPump
from executor_service.runner.output_variables import read_output_variables
from executor_service.runner.pipe_reader import PipeReader
from executor_service.runner.process_table import start_time_now
from executor_service.runner.process_tree import (
    TRACKER,
    Poller,
    StepTree,
    Termination,
    kill_now,
    terminate,
)
from executor_service.runner.subreaper import become_subreaper
from executor_service.runner.workspace import Workspace, create_workspace
from shared.hook_policy import EXIT_SKIP_REQUESTED
from shared.stubs import executor_pb2, library_pb2

__all__ = ["CapturedOutput", "OutputChunk", "StepResult", "StepSpec", "run_step"]

EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
# After the leader is gone and its processes ended, a pipe that stays silent this long is
# held by something the runner could not attribute: stop waiting for its end.
DRAIN_IDLE_SECONDS = 2.0
# How long to wait for the leader's status once every process of the step got SIGKILL.
REAP_WAIT_SECONDS = 30.0
_DRAIN_CHECK_SECONDS = 0.25
PIPE_SIZE = 1024 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_STDOUT = executor_pb2.OUTPUT_STREAM_STDOUT
_STDERR = executor_pb2.OUTPUT_STREAM_STDERR
_Status = library_pb2.ExecutionStatus


@dataclass(frozen=True)
class StepSpec:
    """What to run. ``content`` is already verified against ``digest`` by the caller."""

    execution_id: str
    script_name: str
    content: bytes
    digest: str
    timeout_seconds: float
    environment: dict[str, str]  # complete, from build_environment; the runner adds
    # HOOKSHELF_OUTPUT and (unless present) HOME
    secrets: tuple[str, ...] = ()  # values to redact from the output
    kill_grace_seconds: float = 5.0


@dataclass(frozen=True)
class StepResult:
    status: library_pb2.ExecutionStatus.ValueType
    exit_code: int  # see the module docstring
    started_at: datetime  # UTC
    ended_at: datetime  # UTC
    duration_ms: int
    stdout: CapturedOutput
    stderr: CapturedOutput
    output_variables: dict[str, str]
    error_message: str = ""  # why it could not start or was killed
    # Things worth telling that did not change the status: bad $HOOKSHELF_OUTPUT lines,
    # background processes killed after the step ended, output cut off.
    warnings: tuple[str, ...] = ()


class _Ending(Enum):
    EXITED = "exited"
    TIMED_OUT = "timed out"
    CANCELLED = "cancelled"


async def run_step(
    spec: StepSpec,
    emit: Emit,
    *,
    work_root: Path,
    cancel: asyncio.Event | None = None,
    workspace: Workspace | None = None,
    script: Path | None = None,
) -> StepResult:
    """Run one step to its end and return how it went (see the module docstring).

    ``workspace``: a fresh one (``WorkspacePool.take``) that stays the caller's, to give
    back once this returns; without it, one is made under ``work_root`` and removed.
    ``script``: the file holding exactly ``spec.content`` to exec (installed in the
    workspace's script slot ahead, `Workspace.install_script`); without it, the content
    is installed here."""
    become_subreaper()  # idempotent; without it, orphans of the step escape to init
    own = workspace is None
    if workspace is None:
        workspace = create_workspace(work_root)
    try:
        if script is None:
            script = workspace.install_script(spec.script_name, spec.content)
        return await _StepRun(spec, emit, workspace, script, cancel).run()
    finally:
        if own:
            workspace.remove()


class _StepRun:
    """One execution of run_step: the child, its pipes, its pumps, its tree."""

    def __init__(
        self,
        spec: StepSpec,
        emit: Emit,
        workspace: Workspace,
        script: Path,
        cancel: asyncio.Event | None,
    ) -> None:
        self.spec = spec
        self.emit = emit
        self.workspace = workspace
        self.script = script
        self.cancel = cancel
        self.loop = asyncio.get_running_loop()
        self.warnings: list[str] = []
        self.readers: list[PipeReader] = []
        self.pumps: list[OutputPump] = []
        self.tasks: list[asyncio.Task[None] | None] = [None, None]  # the pumps', once started
        self._wake: asyncio.Future[None] | None = None
        self._pumping = True  # pumps may start (not once the step is ending abnormally)

    async def run(self) -> StepResult:
        self.started_at = datetime.now(UTC)
        self.started = time.monotonic()
        timeout = self.spec.timeout_seconds
        self.deadline = self.loop.time() + (timeout if math.isfinite(timeout) else 1e12)
        environment = dict(self.spec.environment)
        environment.setdefault("HOME", str(self.workspace.directory))
        environment["HOOKSHELF_OUTPUT"] = str(self.workspace.output_file)
        # Unique to this step (workspaces are reused): the marker that finds its orphans.
        environment["HOOKSHELF_EXECUTION_ID"] = self.spec.execution_id
        stdout_read, stdout_write = _pipe()
        stderr_read, stderr_write = _pipe()
        # Our own pipes rather than asyncio's PIPE so the runner owns the readers and can
        # close one that a stranger keeps open (see _drain).
        read_ends = (stdout_read, stderr_read)
        try:
            try:
                started_after = start_time_now()
                with TRACKER.spawning():
                    process = await _spawn(
                        self._argv(),
                        environment,
                        self.workspace.directory,
                        stdout_write,
                        stderr_write,
                    )
            finally:
                # The child has its own copies; ours must go or the pipes never reach EOF.
                os.close(stdout_write)
                os.close(stderr_write)
        except BaseException as error:
            for fd in read_ends:
                os.close(fd)
            if isinstance(error, OSError):
                return self._cannot_start(error)
            raise
        self.process = process
        # The marker finds orphans of this step by their inherited environment.
        marker = f"\0HOOKSHELF_EXECUTION_ID={self.spec.execution_id}\0".encode()
        tree = TRACKER.track(process.pid, marker, started_after)
        poller = Poller()
        readers: list[PipeReader] = []
        stop_listening = self._listen()
        try:
            for fd in read_ends:
                readers.append(PipeReader(fd, on_change=self._on_output))
            self.readers = readers
            emit_lock = asyncio.Lock()
            self.pumps = [
                OutputPump(stream, reader, self.emit, emit_lock, self.spec.secrets)
                for stream, reader in zip((_STDOUT, _STDERR), readers, strict=True)
            ]
            return await self._supervise(tree)
        except BaseException:
            # Cancelled, emit failed, or a bug: whatever it is, no process outlives the step.
            self._pumping = False  # output arriving from now on is not sent
            for task in self.tasks:
                if task is not None:
                    task.cancel()
            try:
                await terminate(
                    tree, self.spec.kill_grace_seconds, leader_running=process.returncode is None
                )
            except asyncio.CancelledError:
                kill_now(tree)  # cancelled again: no more patience
            await asyncio.gather(*filter(None, self.tasks), return_exceptions=True)
            raise
        finally:
            self._pumping = False
            stop_listening()
            poller.stop()
            TRACKER.untrack(tree)
            for reader in readers:
                reader.close()
            for fd in read_ends[len(readers) :]:
                os.close(fd)  # those whose reader was never made

    # --- waking the supervisor --------------------------------------------------------
    # One future, woken by callbacks (the leader's exit, output, a pump ending, the kill
    # switch, the deadline) rather than tasks waiting on each: a hook that exits at once
    # without output then costs no task besides the step's own.

    def _listen(self) -> Callable[[], None]:
        """Wake on the leader's exit and on ``cancel``; returns what stops listening."""
        self.process.exited.add_done_callback(self._wake_up)
        cancel = self.cancel
        if cancel is None:
            return lambda: None
        if isinstance(cancel, KillSwitch):
            return cancel.listen(self._wake_up)
        waiter = asyncio.ensure_future(cancel.wait())  # a plain asyncio.Event
        waiter.add_done_callback(self._wake_up)

        def stop() -> None:
            waiter.cancel()

        return stop

    def _wake_up(self, *_: object) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _sleep(self, timeout: float | None = None) -> None:
        """Until woken, or ``timeout`` seconds."""
        self._wake = self.loop.create_future()
        timer = self.loop.call_later(timeout, self._wake_up) if timeout is not None else None
        try:
            await self._wake
        finally:
            self._wake = None
            if timer is not None:
                timer.cancel()

    def _on_output(self) -> None:
        """A reader has data or reached its end: its pump starts if it has something to
        pump, and the supervisor looks again."""
        for index, reader in enumerate(self.readers):
            if self.tasks[index] is None and reader.has_data:
                self._start_pump(index)
        self._wake_up()

    def _start_pump(self, index: int) -> None:
        if not self._pumping:
            return
        task = self.loop.create_task(self.pumps[index].run())
        task.add_done_callback(self._wake_up)
        self.tasks[index] = task

    def _raise_failed_pump(self) -> None:
        for task in self.tasks:
            if task is not None and task.done():
                task.result()  # raises what emit raised

    def _argv(self) -> list[str]:
        script = str(self.script)
        return [script] if self.spec.content.startswith(b"#!") else ["/bin/bash", script]

    async def _supervise(self, tree: StepTree) -> StepResult:
        exited = self.process.exited  # watched, never cancelled: the leader's own
        ending = await self._wait_for_end(exited)
        grace = self.spec.kill_grace_seconds
        if ending is _Ending.EXITED:
            termination = await terminate(tree, grace, leader_running=False)
            if termination.found:
                self.warnings.append(
                    f"killed {termination.found} background process(es) left running "
                    "after the script exited"
                )
            drain_until = self.deadline
        else:
            termination = await terminate(tree, grace, leader_running=True)
            await self._reap_leader(exited)
            drain_until = self.loop.time() + DRAIN_IDLE_SECONDS
        await self._drain(drain_until)
        await TRACKER.collect_strays()
        return self._result(ending, termination)

    async def _wait_for_end(self, exited: asyncio.Future[int]) -> _Ending:
        """Until the leader exits, the deadline passes or ``cancel`` is set. Pumps that
        end early (the script closed stdout) are fine; a pump that fails raises here."""
        while True:
            remaining = self.deadline - self.loop.time()
            if exited.done():
                return _Ending.EXITED
            if self.cancel is not None and self.cancel.is_set():
                return _Ending.CANCELLED
            if remaining <= 0:
                return _Ending.TIMED_OUT
            self._raise_failed_pump()
            await self._sleep(remaining)

    async def _reap_leader(self, exited: asyncio.Future[int]) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(exited), REAP_WAIT_SECONDS)
        except TimeoutError:
            self.warnings.append(f"the script's process {self.process.pid} could not be killed")

    async def _drain(self, until: float) -> None:
        """Let the pumps read to EOF. The step's processes are gone, so a pipe that stays
        open and silent is held by a stranger: close it after DRAIN_IDLE_SECONDS, or at
        ``until`` whatever it does."""
        for index, reader in enumerate(self.readers):
            if self.tasks[index] is None and not reader.closed:
                self._start_pump(index)  # an open pipe: its pump watches it to the end
        while True:
            self._raise_failed_pump()
            if all(task is None or task.done() for task in self.tasks):
                return
            await self._sleep(_DRAIN_CHECK_SECONDS)
            now = self.loop.time()
            for pump, task, reader in zip(self.pumps, self.tasks, self.readers, strict=True):
                if task is None or task.done() or reader.closed:
                    continue
                idle = pump.waiting_since is not None and (
                    now - pump.waiting_since > DRAIN_IDLE_SECONDS
                )
                if idle or now > until:
                    name = "stdout" if pump.stream == _STDOUT else "stderr"
                    self.warnings.append(
                        f"{name} was still open after the step ended (held by a process "
                        "outside its tree); stopped reading it"
                    )
                    reader.close()  # the pump sees the end and flushes

    def _result(self, ending: _Ending, termination: Termination) -> StepResult:
        returncode = self.process.returncode
        exit_code = returncode if returncode is not None else -signal.SIGKILL
        error_message = ""
        if ending is _Ending.EXITED:
            if exit_code == 0:
                status = _Status.EXECUTION_STATUS_SUCCEEDED
            elif exit_code == EXIT_SKIP_REQUESTED:
                status = _Status.EXECUTION_STATUS_SKIP_REQUESTED
            else:
                status = _Status.EXECUTION_STATUS_FAILED
                if exit_code < 0:
                    error_message = f"killed by {_signal_name(-exit_code)}"
        else:
            status = (
                _Status.EXECUTION_STATUS_TIMED_OUT
                if ending is _Ending.TIMED_OUT
                else _Status.EXECUTION_STATUS_CANCELLED
            )
            how = (
                f"SIGTERM, then SIGKILL after {self.spec.kill_grace_seconds:g} s"
                if termination.killed
                else "SIGTERM"
            )
            if ending is _Ending.TIMED_OUT:
                error_message = f"timed out after {self.spec.timeout_seconds:g} s; ended by {how}"
            else:
                error_message = f"cancelled; ended by {how}"
        variables, variable_warnings = read_output_variables(self.workspace.output_file)
        return self._finish(
            status,
            exit_code,
            stdout=self.pumps[0].capture.result(),
            stderr=self.pumps[1].capture.result(),
            variables=variables,
            error_message=error_message,
            warnings=self.warnings + variable_warnings,
        )

    def _cannot_start(self, error: OSError) -> StepResult:
        exit_code = EXIT_NOT_FOUND if error.errno == errno.ENOENT else EXIT_CANNOT_EXECUTE
        reason = error.strerror or str(error)
        interpreter = _shebang_interpreter(self.spec.content)
        if error.errno == errno.ENOENT and interpreter is not None:
            message = f"cannot start: interpreter {interpreter!r} (shebang line) not found"
            if interpreter.endswith("\r"):
                message += " (Windows line endings?)"
        elif error.errno == errno.ENOEXEC:
            message = f"cannot start: {reason} (is the shebang line valid?)"
        elif error.errno == errno.E2BIG:
            message = f"cannot start: {reason} (environment or a variable too large)"
        else:
            message = f"cannot start: {reason}"
        empty = CapturedOutput(head=b"", tail=b"", total_bytes=0, truncated=False)
        return self._finish(
            _Status.EXECUTION_STATUS_FAILED,
            exit_code,
            stdout=empty,
            stderr=empty,
            variables={},
            error_message=message,
            warnings=[],
        )

    def _finish(
        self,
        status: library_pb2.ExecutionStatus.ValueType,
        exit_code: int,
        *,
        stdout: CapturedOutput,
        stderr: CapturedOutput,
        variables: dict[str, str],
        error_message: str,
        warnings: list[str],
    ) -> StepResult:
        return StepResult(
            status=status,
            exit_code=exit_code,
            started_at=self.started_at,
            ended_at=datetime.now(UTC),
            duration_ms=int((time.monotonic() - self.started) * 1000),
            stdout=stdout,
            stderr=stderr,
            output_variables=variables,
            error_message=error_message,
            warnings=tuple(warnings),
        )


async def _spawn(
    argv: list[str], environment: dict[str, str], cwd: Path, stdout: int, stderr: int
) -> Leader:
    attempts = 3
    for attempt in range(attempts):
        try:
            return start_leader(argv, environment, cwd, stdout, stderr)
        except OSError as error:
            # ETXTBSY: another thread forked while the script was open for writing and its
            # child still held the descriptor; it goes at that child's exec. Try again.
            if error.errno != errno.ETXTBSY or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def _pipe() -> tuple[int, int]:
    """A pipe for one output stream, enlarged when the system allows: a bulk writer then
    hands over more per wake-up, which roughly doubles throughput on a busy machine. Memory
    is only used while the pipe is full, i.e. while the consumer is slower than the step."""
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_end, F_SETPIPE_SZ, PIPE_SIZE)
    return read_end, write_end


def _shebang_interpreter(content: bytes) -> str | None:
    """The interpreter path as the kernel reads it: up to the first space or tab."""
    if not content.startswith(b"#!"):
        return None
    line = content[2:].split(b"\n", 1)[0].lstrip(b" \t")
    return re.split(rb"[ \t]", line, maxsplit=1)[0].decode("utf-8", "replace")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
