"""Attaching scripts to repositories: assign, unassign, reorder, assignments, plan."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import typer

from shared.cli.choices import Hook, OnError, RunOn, key_values, label
from shared.cli.render import out, print_json, short_digest, table
from shared.cli.runtime import CliError, config, run
from shared.client import LibraryClient
from shared.stubs import library_pb2 as pb

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Repository = Annotated[str, typer.Option("--repository", "-r", help="The repository id.")]
HookOpt = Annotated[Hook, typer.Option("--hook", help="pre or post.")]


def register(app: typer.Typer) -> None:
    app.command()(assign)
    app.command()(unassign)
    app.command()(reorder)
    app.command()(assignments)
    app.command()(plan)


async def _script_id(library: LibraryClient, ref: str) -> str:
    return (await library.find_script(ref, recent_executions=0)).script.id


def _override(value: int | None, name: str) -> str:
    return "" if value is None else name


def assign(
    ctx: typer.Context,
    script: Annotated[str, typer.Argument(help="Script name (or id).", metavar="SCRIPT")],
    repository: Repository,
    hook: HookOpt,
    order: Annotated[int, typer.Option(help="Position in the chain (ascending).")] = 0,
    timeout: Annotated[int | None, typer.Option(help="Override the script's timeout.")] = None,
    run_on: Annotated[RunOn | None, typer.Option(help="Override run_on (post hooks).")] = None,
    on_error: Annotated[OnError | None, typer.Option(help="Failure policy.")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Assign but leave out.")] = False,
    as_json: Json = False,
) -> None:
    """Attach a script to a repository's pre or post chain."""
    values = key_values(param, "--param")

    async def go() -> None:
        async with config(ctx).library() as library:
            assignment = pb.Assignment(
                repository_id=repository,
                script_id=await _script_id(library, script),
                hook_type=hook.proto,  # type: ignore[arg-type]  # .proto is a plain int; the stub wants the enum's ValueType
                execution_order=order,
                enabled=not disabled,
                parameter_values=values,
            )
            if timeout is not None:
                assignment.custom_timeout_seconds = timeout
            if run_on is not None:
                assignment.custom_run_on = run_on.proto  # type: ignore[assignment]  # .proto is a plain int; the stub wants the enum's ValueType
            if on_error is not None:
                assignment.on_error = on_error.proto  # type: ignore[assignment]  # .proto is a plain int; the stub wants the enum's ValueType
            made = await library.assign_script(pb.AssignScriptRequest(assignment=assignment))
        if as_json:
            print_json(made.assignment)
        else:
            a = made.assignment
            out.print(
                f"assigned [bold]{a.script_name or script}[/bold] to {a.repository_id} "
                f"({hook.value}, order {a.execution_order}) [dim]{a.id}[/dim]"
            )

    run(go())


def unassign(
    ctx: typer.Context,
    script: Annotated[str, typer.Argument(help="Script name (or id).", metavar="SCRIPT")] = "",
    repository: Annotated[str, typer.Option("--repository", "-r")] = "",
    hook: Annotated[Hook | None, typer.Option("--hook")] = None,
    assignment_id: Annotated[str, typer.Option("--id", help="The assignment id.")] = "",
) -> None:
    """Detach a script: `unassign SCRIPT -r REPO --hook pre`, or `unassign --id ID`."""

    async def go() -> None:
        async with config(ctx).library() as library:
            target = assignment_id
            if not target:
                if not (script and repository and hook):
                    raise CliError("give SCRIPT with --repository and --hook, or --id")
                found = await library.all_assignments(
                    pb.ListAssignmentsRequest(
                        repository_id=repository,
                        script_id=await _script_id(library, script),
                        hook_type=hook.proto,  # type: ignore[arg-type]  # .proto is a plain int; the stub wants the enum's ValueType
                    )
                )
                if not found:
                    raise CliError(f"{script} is not assigned to {repository} ({hook.value})")
                target = found[0].id
            await library.unassign_script(pb.UnassignScriptRequest(id=target))
        out.print(f"unassigned {script or target}")

    run(go())


def reorder(
    ctx: typer.Context,
    repository: Repository,
    hook: HookOpt,
    scripts: Annotated[list[str], typer.Argument(help="Every script of the chain, in order.")],
    as_json: Json = False,
) -> None:
    """Put a whole chain in a new order in one call."""

    async def go() -> None:
        async with config(ctx).library() as library:
            chain = await library.all_assignments(
                pb.ListAssignmentsRequest(repository_id=repository, hook_type=hook.proto)  # type: ignore[arg-type]  # .proto is a plain int; the stub wants the enum's ValueType
            )
            by_name = {a.script_name: a.id for a in chain} | {a.script_id: a.id for a in chain}
            by_name |= {a.id: a.id for a in chain}
            missing = [s for s in scripts if s not in by_name]
            if missing:
                raise CliError(
                    f"not in the {hook.value} chain of {repository}: {', '.join(missing)}"
                )
            done = await library.reorder_assignments(
                pb.ReorderAssignmentsRequest(
                    repository_id=repository,
                    hook_type=hook.proto,  # type: ignore[arg-type]  # .proto is a plain int; the stub wants the enum's ValueType
                    assignment_ids=[by_name[s] for s in scripts],
                )
            )
        if as_json:
            print_json(list(done.assignments))
        else:
            _assignment_table(f"{repository}: {hook.value} chain", done.assignments)

    run(go())


def assignments(
    ctx: typer.Context,
    repository: Annotated[str, typer.Option("--repository", "-r")] = "",
    script: Annotated[str, typer.Option("--script", "-s")] = "",
    hook: Annotated[Hook | None, typer.Option("--hook")] = None,
    as_json: Json = False,
) -> None:
    """List assignments in execution order."""

    async def go() -> None:
        async with config(ctx).library() as library:
            request = pb.ListAssignmentsRequest(repository_id=repository, page_size=1000)
            if script:
                request.script_id = await _script_id(library, script)
            if hook:
                request.hook_type = hook.proto  # type: ignore[assignment]  # .proto is a plain int; the stub wants the enum's ValueType
            found = await library.all_assignments(request)
        if as_json:
            print_json(found)
        else:
            _assignment_table(None, found)

    run(go())


def _assignment_table(title: str | None, found: Iterable[pb.Assignment]) -> None:
    table(
        title,
        ["Repository", "Hook", "Order", "Script", "Enabled", "Run on", "On error", "Timeout"],
        (
            (
                a.repository_id,
                label(pb.HookType, a.hook_type),
                a.execution_order,
                a.script_name,
                "yes" if a.enabled else "no",
                label(pb.RunOn, a.custom_run_on) if a.HasField("custom_run_on") else "",
                label(pb.OnError, a.on_error) if a.HasField("on_error") else "",
                f"{a.custom_timeout_seconds}s" if a.HasField("custom_timeout_seconds") else "",
            )
            for a in found
        ),
    )


def plan(ctx: typer.Context, repository: Repository, hook: HookOpt, as_json: Json = False) -> None:
    """Show the resolved chain: exactly what the executor would run, in order."""

    async def go() -> None:
        async with config(ctx).library() as library:
            resolved = await library.resolve_hook_plan(
                pb.ResolveHookPlanRequest(repository_id=repository, hook_type=hook.proto)  # type: ignore[arg-type]  # .proto is a plain int; the stub wants the enum's ValueType
            )
        if as_json:
            print_json(resolved)
            return
        table(
            f"{repository}: {hook.value} chain",
            ["#", "Script", "Timeout", "Run on", "On error", "Parameters", "Digest"],
            (
                (
                    i,
                    step.script_name,
                    f"{step.timeout_seconds}s",
                    label(pb.RunOn, step.run_on),
                    label(pb.OnError, step.on_error),
                    " ".join(
                        f"{k}=***" if k in step.secret_parameter_names else f"{k}={v}"
                        for k, v in sorted(step.parameter_values.items())
                    ),
                    short_digest(step.digest),
                )
                for i, step in enumerate(resolved.steps, 1)
            ),
        )

    run(go())
