"""`hookshelf templates ...`: the built-in templates."""

from __future__ import annotations

from typing import Annotated

import typer

from shared.cli.choices import key_values, label
from shared.cli.render import out, print_json, table
from shared.cli.runtime import config, run
from shared.stubs import library_pb2 as pb

app = typer.Typer(help="Built-in templates: list, instantiate.")


@app.command("list")
def list_templates(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the templates shipped with the library."""

    async def go() -> None:
        async with config(ctx).library() as library:
            found = (await library.list_templates(pb.ListTemplatesRequest())).templates
        if as_json:
            print_json(list(found))
            return
        table(
            None,
            ["Name", "Ver", "Category", "Hook", "Parameters", "Description"],
            (
                (
                    t.name,
                    t.template_version,
                    t.category,
                    label(pb.HookType, t.suggested_hook_type),
                    " ".join(p.name + ("" if p.has_default else "*") for p in t.parameters),
                    t.description,
                )
                for t in found
            ),
        )
        out.print("[dim]* required: give it with --param NAME=VALUE[/dim]")

    run(go())


@app.command()
def instantiate(
    ctx: typer.Context,
    template: Annotated[str, typer.Argument(help="Template name, e.g. docker-stop.")],
    name: Annotated[str, typer.Argument(help="Name of the new script.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")
    ] = None,
    description: Annotated[str, typer.Option()] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a script of your own from a template, with parameter values."""
    values = key_values(param, "--param")

    async def go() -> None:
        async with config(ctx).library() as library:
            created = await library.instantiate_template(
                pb.InstantiateTemplateRequest(
                    template_name=template,
                    script_name=name,
                    parameter_values=values,
                    description=description,
                )
            )
        if as_json:
            print_json(created.script)
        else:
            out.print(f"created [bold]{created.script.name}[/bold] from {template}")

    run(go())
