"""`hookshelf history`: the activity feed."""

from __future__ import annotations

from typing import Annotated

import typer

from shared.cli.choices import Hook, Status, label, point_in_time
from shared.cli.render import print_json, seconds, status_text, table, when
from shared.cli.runtime import config, run
from shared.stubs import library_pb2 as pb


def register(app: typer.Typer) -> None:
    app.command()(history)


def history(
    ctx: typer.Context,
    script: Annotated[str, typer.Option("--script", "-s", help="Script name or id.")] = "",
    repository: Annotated[str, typer.Option("--repository", "-r")] = "",
    job: Annotated[str, typer.Option(help="Job id.")] = "",
    run_id: Annotated[str, typer.Option("--run", help="Run id.")] = "",
    status: Annotated[Status | None, typer.Option(help="Only this status.")] = None,
    hook: Annotated[Hook | None, typer.Option("--hook", help="Only pre or post.")] = None,
    since: Annotated[str, typer.Option(help="30m, 12h, 7d or an ISO time.")] = "",
    until: Annotated[str, typer.Option(help="30m, 12h, 7d or an ISO time.")] = "",
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Executions, newest first: what ran, where, how it ended."""
    request = pb.ListExecutionsRequest(
        repository_id=repository, job_id=job, run_id=run_id, page_size=min(limit, 1000) or 100
    )
    if status:
        request.status = status.proto  # type: ignore[assignment]  # .proto is a plain int; the stub wants the enum's ValueType
    if since:
        request.start_time_after.FromDatetime(point_in_time(since, "--since"))
    if until:
        request.start_time_before.FromDatetime(point_in_time(until, "--until"))

    async def go() -> None:
        async with config(ctx).library() as library:
            if script:
                request.script_id = (
                    await library.find_script(script, recent_executions=0)
                ).script.id
            found = [e async for e in library.iter_executions(request, limit=limit)]
        if hook:  # not a server-side filter in v1; the feed is small per page
            found = [e for e in found if e.hook_type == hook.proto]
        if as_json:
            print_json(found)
            return
        table(
            None,
            [
                "Started",
                "Script",
                "Repository",
                "Hook",
                "Status",
                "Exit",
                "Took",
                "Outcome",
                "Trigger",
                "Run",
            ],
            (
                (
                    when(e.start_time),
                    e.script_name,
                    e.repository_id,
                    label(pb.HookType, e.hook_type),
                    status_text(e.status),
                    e.exit_code,
                    seconds(e.duration_ms),
                    label(pb.BackupOutcome, e.backup_outcome),
                    label(pb.ExecutionTrigger, e.trigger),
                    e.run_id[:8],
                )
                for e in found
            ),
        )

    run(go())
