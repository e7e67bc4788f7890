"""`hookshelf backup ... -- COMMAND...`: any backup command, wrapped in its hook chains.

    BeginBackup (pre chain, shown live) ─ PROCEED ─▶ COMMAND (lease renewed meanwhile)
          │ SKIP / ABORT: the executor already ran the post chain     │ exit status → outcome
          ▼                                                           ▼
      exit 75 / 70                                  EndBackup (post chain) → exit status

Ctrl-C / SIGTERM / SIGHUP stop COMMAND (SIGTERM to its process group, SIGKILL after a
grace), the outcome is CANCELLED and the post chain still runs. If this process dies
outright, the executor ends the run when its lease expires and runs the post chain then.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Annotated

import typer

from shared.cli.choices import key_values
from shared.cli.render import EventPrinter, err
from shared.cli.runs import EXIT_ABORT, EXIT_SKIP, REATTACHED, show_stream
from shared.cli.runtime import EXIT_UNAVAILABLE, Config, config, run
from shared.client import ExecutorClient, HookshelfCallError, HookStream, LeaseKeeper
from shared.stubs import executor_pb2, library_pb2

PRE_DONE = (executor_pb2.RUN_STATE_AWAITING_END, executor_pb2.RUN_STATE_ENDED)

EXIT_REFUSED = 64  # EX_USAGE: the executor refused the run (1 is borg's "warning")
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
KILL_GRACE_SECONDS = 10.0
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def register(app: typer.Typer) -> None:
    app.command(context_settings={"allow_interspersed_args": False})(backup)


def is_borg(command: list[str]) -> bool:
    name = Path(command[0]).name
    return name in ("borg", "borg.exe") or name.startswith("borg-")


def outcome_for(status: int, *, borg: bool) -> library_pb2.BackupOutcome.ValueType:
    """Exit status → outcome. borg: 0 success, 1 (or a modern 100-127) warning, else failure."""
    if status == 0:
        return library_pb2.BACKUP_OUTCOME_SUCCESS
    if borg and (status == 1 or 100 <= status <= 127):
        return library_pb2.BACKUP_OUTCOME_WARNING
    return library_pb2.BACKUP_OUTCOME_FAILURE


def borg_repository(command: list[str]) -> str:
    """The REPO of `borg create REPO::ARCHIVE`, else $BORG_REPO, else ''."""
    for arg in command[1:]:
        if "::" in arg and not arg.startswith("-"):
            return arg.split("::", 1)[0]
    return os.environ.get("BORG_REPO", "")


class Wrapper:
    """One wrapped backup. Signals act on whatever phase is current."""

    def __init__(
        self,
        cfg: Config,
        command: list[str],
        *,
        repository: str,
        job: str,
        variables: dict[str, str],
        lease: int,
        borg: bool,
        repository_path: str,
    ) -> None:
        self.cfg = cfg
        self.command = command
        self.repository = repository
        self.job = job
        self.variables = variables
        self.lease = lease
        self.borg = borg
        self.repository_path = repository_path
        self.printer = EventPrinter(progress=err, stdout=err)  # stdout belongs to COMMAND
        self.phase = "pre"
        self.signal: int | None = None
        self.pre_task: asyncio.Task[executor_pb2.SummaryEvent] | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.stream: HookStream | None = None
        self._killer: asyncio.TimerHandle | None = None

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in _SIGNALS:
            loop.add_signal_handler(signum, self.on_signal, signum)
        try:
            async with self.cfg.executor() as executor:
                return await self._backup(executor)
        finally:
            for signum in _SIGNALS:
                loop.remove_signal_handler(signum)
            if self._killer:
                self._killer.cancel()

    def on_signal(self, signum: int) -> None:
        first = self.signal is None
        self.signal = self.signal or signum
        name = signal.Signals(signum).name
        if self.phase == "pre" and self.pre_task:
            self.printer.warn(f"{name}: stopping the pre chain; the post chain will still run")
            self.pre_task.cancel()
        elif self.phase == "command" and self.process:
            if first:
                self.printer.warn(f"{name}: stopping {self.command[0]}; the post chain will run")
            else:
                self.printer.warn(f"{name} again: killing {self.command[0]} now")
            self._stop_command(force=not first)
        elif self.phase == "post":
            self.printer.warn(f"{name}: the post chain is running; waiting for it to finish")

    def _stop_command(self, *, force: bool = False) -> None:
        """SIGTERM to COMMAND's process group, SIGKILL after a grace (or now, if force)."""
        assert self.process is not None
        pgid = self.process.pid  # it leads its own group (process_group=0)

        def kill(signum: int) -> None:
            try:
                os.killpg(pgid, signum)
            except ProcessLookupError:
                pass

        if force:
            kill(signal.SIGKILL)
            return
        kill(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        self._killer = loop.call_later(KILL_GRACE_SECONDS, kill, signal.SIGKILL)

    async def _pre(
        self, executor: ExecutorClient, keeper: LeaseKeeper
    ) -> executor_pb2.SummaryEvent:
        stream = executor.begin_backup(
            repository_id=self.repository,
            job_id=self.job,
            variables=self.variables,
            lease_seconds=self.lease,
            repository_path=self.repository_path,
        )
        self.stream = stream
        async for event in stream:
            if stream.run_id:
                keeper.start(stream.run_id)
            self.printer.show(event)
        if stream.reattached:
            self.printer.note(REATTACHED)
        assert stream.summary is not None
        return stream.summary

    async def _backup(self, executor: ExecutorClient) -> int:
        keeper = executor.keep_alive(self.lease, on_problem=self.printer.warn)
        try:
            self.pre_task = asyncio.create_task(self._pre(executor, keeper))
            summary: executor_pb2.SummaryEvent | None = None
            try:
                summary = await self.pre_task
            except asyncio.CancelledError:
                if self.signal is None:
                    raise  # not ours: someone cancelled us
            run_id = self.stream.run_id if self.stream else ""

            if self.signal is None and summary is not None:
                if summary.verdict == executor_pb2.VERDICT_SKIP:
                    self.printer.note("a pre hook asked to skip this backup: COMMAND not run")
                    return EXIT_SKIP
                if summary.verdict != executor_pb2.VERDICT_PROCEED:
                    self.printer.note("the pre chain aborted the backup: COMMAND not run")
                    return EXIT_ABORT
                status, outcome = await self._command(run_id, dict(summary.variables))
            elif not run_id:
                self.printer.warn("interrupted before the run started; nothing to end")
                return 128 + (self.signal or signal.SIGINT)
            else:
                # Interrupted in the pre chain: the executor kills the running hook and ends
                # the run itself (outcome cancelled); EndBackup then replays how it ended.
                self.phase = "post"
                status, outcome = 128 + (self.signal or 0), library_pb2.BACKUP_OUTCOME_CANCELLED
                await executor.wait_for_run(run_id, lambda run: run.state in PRE_DONE)
            if keeper.lost:
                self.printer.warn("the run's lease was lost while COMMAND ran (see above)")
        finally:
            await keeper.stop()

        self.phase = "post"
        name = library_pb2.BackupOutcome.Name(outcome).removeprefix("BACKUP_OUTCOME_").lower()
        self.printer.note(f"outcome {name}: running the post chain")
        try:
            await show_stream(executor.end_backup(run_id, outcome), self.printer)
        except HookshelfCallError as error:
            self.printer.warn(
                f"could not run the post chain: {error} — the executor runs it when the "
                "run's lease expires"
            )
            return status or EXIT_UNAVAILABLE
        return status

    async def _command(
        self, run_id: str, hook_variables: dict[str, str]
    ) -> tuple[int, library_pb2.BackupOutcome.ValueType]:
        """Run COMMAND; its exit status and the outcome it means."""
        self.phase = "command"
        self.printer.note(f"running {' '.join(self.command)}")
        status = await self._run_command(run_id, hook_variables)
        self.printer.note(f"{self.command[0]} exited {status}")
        if self.signal is not None:
            # We stopped it: exit as a shell would for the signal we got.
            return 128 + self.signal, library_pb2.BACKUP_OUTCOME_CANCELLED
        return status, outcome_for(status, borg=self.borg)

    async def _run_command(self, run_id: str, hook_variables: dict[str, str]) -> int:
        # Variables the pre hooks returned (KEY=VALUE in $HOOKSHELF_OUTPUT) reach COMMAND.
        env = {**os.environ, **hook_variables, "HOOKSHELF_RUN_ID": run_id}
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.command, env=env, process_group=0
            )
        except FileNotFoundError:
            self.printer.warn(f"cannot run {self.command[0]}: command not found")
            return EXIT_NOT_FOUND
        except OSError as error:
            self.printer.warn(f"cannot run {self.command[0]}: {error.strerror}")
            return EXIT_CANNOT_EXECUTE
        if self.signal is not None:  # a signal that came while it was starting
            self._stop_command()
        code = await self.process.wait()
        return code if code >= 0 else 128 - code


def backup(
    ctx: typer.Context,
    command: Annotated[
        list[str], typer.Argument(help="The backup command, after --.", metavar="-- COMMAND...")
    ],
    repository: Annotated[str, typer.Option("--repository", "-r", help="The repository id.")],
    var: Annotated[
        list[str] | None, typer.Option("--var", "-v", help="KEY=VALUE for every hook.")
    ] = None,
    job: Annotated[str, typer.Option(help="Job id for the history.")] = "",
    borg: Annotated[
        bool | None,
        typer.Option("--borg/--no-borg", help="borg exit codes (default: when COMMAND is borg)."),
    ] = None,
    lease: Annotated[
        int,
        typer.Option(
            help="Run lease in seconds (60-86400; the executor's 600 when unset), "
            "renewed every lease/3.",
            show_default=False,
        ),
    ] = 0,
    repository_path: Annotated[
        str, typer.Option(help="Passed as HOOKSHELF_REPOSITORY_PATH (default: borg's REPO).")
    ] = "",
) -> None:
    """Run COMMAND between the repository's pre and post chains.

    Exits with COMMAND's status; 75 when a pre hook skipped the backup, 70 when the pre
    chain aborted it, 64 when the executor refused the run, 69 when it cannot be reached,
    128+N after signal N (the post chain still ran).
    """
    use_borg = is_borg(command) if borg is None else borg
    wrapper = Wrapper(
        config(ctx),
        command,
        repository=repository,
        job=job,
        variables=key_values(var, "--var"),
        lease=lease,
        borg=use_borg,
        repository_path=repository_path or (borg_repository(command) if use_borg else ""),
    )
    raise typer.Exit(run(wrapper.main(), refused_exit=EXIT_REFUSED))
