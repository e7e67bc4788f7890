"""`hookshelf run` (a repository's real chain) and `hookshelf test` (one script, simulated)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shared.cli.choices import Hook, Outcome, key_values
from shared.cli.render import EventPrinter
from shared.cli.runtime import CliError, config, run
from shared.cli.scripts import read_source
from shared.client import HookStream
from shared.stubs import executor_pb2, library_pb2

EXIT_ABORT = 70  # EX_SOFTWARE: the pre chain aborted the backup
EXIT_SKIP = 75  # EX_TEMPFAIL, as borgmatic: a pre hook asked to skip the backup

REATTACHED = (
    "the stream was lost and reattached to the run; missed output is in `hookshelf history`"
)

Json = Annotated[bool, typer.Option("--json", help="One JSON event per line.")]
Vars = Annotated[list[str] | None, typer.Option("--var", "-v", help="KEY=VALUE (repeatable).")]


def register(app: typer.Typer) -> None:
    app.command("run")(run_chain)
    app.command("test")(test_script)


async def show_stream(stream: HookStream, printer: EventPrinter) -> executor_pb2.SummaryEvent:
    async for event in stream:
        printer.show(event)
    if stream.reattached and not printer.json_lines:
        printer.note(REATTACHED)
    assert stream.summary is not None  # a HookStream ends with its summary or raises
    return stream.summary


def verdict_exit(summary: executor_pb2.SummaryEvent) -> int:
    return {executor_pb2.VERDICT_SKIP: EXIT_SKIP, executor_pb2.VERDICT_ABORT: EXIT_ABORT}.get(
        summary.verdict, 0
    )


def run_chain(
    ctx: typer.Context,
    repository: Annotated[str, typer.Option("--repository", "-r", help="The repository id.")],
    hook: Annotated[Hook, typer.Option("--hook", help="pre opens a run; post ends it.")],
    run_id: Annotated[str, typer.Option("--run", help="For --hook post: the run to end.")] = "",
    outcome: Annotated[Outcome, typer.Option(help="For --hook post.")] = Outcome.success,
    job: Annotated[str, typer.Option(help="Job id for the history.")] = "",
    var: Vars = None,
    lease: Annotated[int, typer.Option(help="Seconds the run lives without an end.")] = 0,
    as_json: Json = False,
) -> None:
    """Run a repository's real chain now, with the executor's promise.

    `--hook pre` opens a run and runs the pre chain; on PROCEED the run stays open and its
    id is printed: end it with `--hook post --run ID [--outcome ...]`, or its lease ends
    it (outcome aborted) and the post chain runs then.
    """
    variables = key_values(var, "--var")
    printer = EventPrinter(json_lines=as_json)

    async def go() -> int:
        async with config(ctx).executor() as executor:
            if hook is Hook.pre:
                stream = executor.begin_backup(
                    repository_id=repository,
                    job_id=job,
                    variables=variables,
                    lease_seconds=lease,
                )
                summary = await show_stream(stream, printer)
                if summary.verdict == executor_pb2.VERDICT_PROCEED and not as_json:
                    printer.note(
                        f"run {stream.run_id} is open. End it with: hookshelf run -r {repository}"
                        f" --hook post --run {stream.run_id} --outcome success"
                    )
                return verdict_exit(summary)
            if not run_id:
                raise CliError("--hook post needs --run RUN_ID (printed by `run --hook pre`)")
            if outcome.proto in (
                library_pb2.BACKUP_OUTCOME_ABORTED,
                library_pb2.BACKUP_OUTCOME_SKIPPED,
            ):
                raise CliError("--outcome for a run is success, warning, failure or cancelled")
            await show_stream(executor.end_backup(run_id, outcome.proto, variables), printer)  # type: ignore[arg-type]  # .proto is a plain int; the stub wants the enum's ValueType
            return 0

    raise typer.Exit(run(go()))


def test_script(
    ctx: typer.Context,
    script: Annotated[str, typer.Argument(help="Script name (or id).", metavar="SCRIPT")] = "",
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Test this content.")] = None,
    hook: Annotated[Hook, typer.Option("--hook", help="Hook type to simulate.")] = Hook.pre,
    outcome: Annotated[Outcome, typer.Option(help="Outcome to simulate (post).")] = Outcome.success,
    var: Vars = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE.")] = None,
    timeout: Annotated[int, typer.Option(help="Seconds (default: the script's).")] = 0,
    repository: Annotated[str, typer.Option("--repository", "-r")] = "",
    as_json: Json = False,
) -> None:
    """Run one script (or a file) as the executor would, without a backup. Recorded as a test.

    Exits 0 when the script succeeded, 75 when it asked to skip, 1 otherwise.
    """
    variables, values = key_values(var, "--var"), key_values(param, "--param")
    if bool(script) == bool(file):
        raise typer.BadParameter("give either SCRIPT or --file", param_hint="SCRIPT/--file")
    printer = EventPrinter(json_lines=as_json)

    async def go() -> int:
        request = executor_pb2.TestScriptRequest(
            hook_type=hook.proto,  # type: ignore[arg-type]  # .proto is a plain int; the stub wants the enum's ValueType
            simulated_outcome=outcome.proto,  # type: ignore[arg-type]  # .proto is a plain int; the stub wants the enum's ValueType
            variables=variables,
            parameter_values=values,
            timeout_seconds=timeout,
            repository_id=repository,
        )
        if file is not None:
            request.content = read_source(file)
        else:
            async with config(ctx).library() as library:
                request.script_id = (
                    await library.find_script(script, recent_executions=0)
                ).script.id
        statuses = []
        async with config(ctx).executor() as executor:
            async for event in executor.test_script(request):
                printer.show(event)
                if event.HasField("step_finished"):
                    statuses.append(event.step_finished.status)
        if statuses and all(s == library_pb2.EXECUTION_STATUS_SUCCEEDED for s in statuses):
            return 0
        return EXIT_SKIP if library_pb2.EXECUTION_STATUS_SKIP_REQUESTED in statuses else 1

    raise typer.Exit(run(go()))
