"""`hookshelf windows ...`: maintenance windows (CRUD; the executor opens and closes them)."""

from __future__ import annotations

from typing import Annotated

import typer
from google.protobuf import field_mask_pb2

from shared.cli.render import out, print_json, table, when
from shared.cli.runtime import CliError, config, run
from shared.client import HookshelfCallError, LibraryClient
from shared.stubs import library_pb2 as pb

app = typer.Typer(help="Maintenance windows: list, show, create, update, delete.")

Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Ref = Annotated[str, typer.Argument(help="Window name (or id).", metavar="WINDOW")]
Scripts = Annotated[list[str] | None, typer.Option(help="Script name or id (repeatable).")]


async def _window(library: LibraryClient, ref: str) -> pb.MaintenanceWindow:
    for window in await library.all_windows():
        if window.name == ref or window.id == ref:
            return window
    raise CliError(f"not found: no maintenance window named {ref!r}")


async def _ids(library: LibraryClient, refs: list[str]) -> list[str]:
    return [(await library.find_script(r, recent_executions=0)).script.id for r in refs]


async def _names(library: LibraryClient, ids: list[str]) -> list[str]:
    names = []
    for script_id in ids:
        try:
            names.append((await library.get_script(pb.GetScriptRequest(id=script_id))).script.name)
        except HookshelfCallError:
            names.append(script_id)
    return names


@app.command("list")
def list_windows(ctx: typer.Context, as_json: Json = False) -> None:
    """List maintenance windows."""

    async def go() -> None:
        async with config(ctx).library() as library:
            found = await library.all_windows()
        if as_json:
            print_json(found)
            return
        table(
            None,
            ["Name", "Cron", "Enabled", "Pre", "Post", "Last run", "Next run", "Id"],
            (
                (
                    w.name,
                    w.cron_expression,
                    "yes" if w.enabled else "no",
                    len(w.pre_script_ids),
                    len(w.post_script_ids),
                    when(w.last_run_time),
                    when(w.next_run_time),
                    w.id,
                )
                for w in found
            ),
        )

    run(go())


@app.command()
def show(ctx: typer.Context, window: Ref, as_json: Json = False) -> None:
    """Show one window and its scripts."""

    async def go() -> None:
        async with config(ctx).library() as library:
            found = await _window(library, window)
            pre = await _names(library, list(found.pre_script_ids))
            post = await _names(library, list(found.post_script_ids))
        if as_json:
            print_json(found)
            return
        out.print(f"[bold]{found.name}[/bold]  [dim]{found.id}[/dim]")
        for key, value in (
            ("description", found.description),
            ("cron", found.cron_expression),
            ("enabled", "yes" if found.enabled else "no"),
            ("pre", ", ".join(pre)),
            ("post", ", ".join(post)),
            ("last run", when(found.last_run_time)),
            ("next run", when(found.next_run_time)),
        ):
            if value:
                out.print(f"  {key:<12}{value}", markup=False)

    run(go())


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Unique window name.")],
    cron: Annotated[str, typer.Option(help="Five-field cron expression, e.g. '0 2 * * *'.")],
    pre: Scripts = None,
    post: Scripts = None,
    description: Annotated[str, typer.Option()] = "",
    disabled: Annotated[bool, typer.Option("--disabled")] = False,
    as_json: Json = False,
) -> None:
    """Create a window: --pre scripts run when it opens, --post scripts when it closes."""

    async def go() -> None:
        async with config(ctx).library() as library:
            window = pb.MaintenanceWindow(
                name=name,
                description=description,
                cron_expression=cron,
                enabled=not disabled,
                pre_script_ids=await _ids(library, pre or []),
                post_script_ids=await _ids(library, post or []),
            )
            made = await library.create_maintenance_window(
                pb.CreateMaintenanceWindowRequest(window=window)
            )
        if as_json:
            print_json(made.window)
        else:
            nxt = when(made.window.next_run_time)
            out.print(
                f"created window [bold]{made.window.name}[/bold]" + (f", next {nxt}" if nxt else "")
            )

    run(go())


@app.command()
def update(
    ctx: typer.Context,
    window: Ref,
    name: Annotated[str | None, typer.Option("--name", help="Rename.")] = None,
    cron: Annotated[str | None, typer.Option()] = None,
    pre: Scripts = None,
    post: Scripts = None,
    description: Annotated[str | None, typer.Option()] = None,
    enabled: Annotated[bool | None, typer.Option("--enabled/--disabled")] = None,
    as_json: Json = False,
) -> None:
    """Change a window; --pre/--post replace the whole list."""

    async def go() -> None:
        async with config(ctx).library() as library:
            current = await _window(library, window)
            change = pb.MaintenanceWindow(id=current.id, etag=current.etag)
            paths = []
            for path, value in (
                ("name", name),
                ("cron_expression", cron),
                ("description", description),
                ("enabled", enabled),
            ):
                if value is not None:
                    setattr(change, path, value)
                    paths.append(path)
            if pre is not None:
                change.pre_script_ids.extend(await _ids(library, pre))
                paths.append("pre_script_ids")
            if post is not None:
                change.post_script_ids.extend(await _ids(library, post))
                paths.append("post_script_ids")
            if not paths:
                raise CliError("nothing to change")
            done = await library.update_maintenance_window(
                pb.UpdateMaintenanceWindowRequest(
                    window=change, update_mask=field_mask_pb2.FieldMask(paths=paths)
                )
            )
        if as_json:
            print_json(done.window)
        else:
            out.print(f"updated window [bold]{done.window.name}[/bold]")

    run(go())


@app.command()
def delete(ctx: typer.Context, window: Ref) -> None:
    """Delete a window."""

    async def go() -> None:
        async with config(ctx).library() as library:
            current = await _window(library, window)
            await library.delete_maintenance_window(
                pb.DeleteMaintenanceWindowRequest(id=current.id)
            )
        out.print(f"deleted window [bold]{current.name}[/bold]")

    run(go())
