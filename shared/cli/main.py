"""`hookshelf`: the command line for the script library and the hook executor.

Global options come before the command (`hookshelf --library host:port scripts list`)
or from HOOKSHELF_LIBRARY_TARGET / HOOKSHELF_EXECUTOR_TARGET / HOOKSHELF_AUTH_TOKEN.
Exit codes are listed in docs/cli.md.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from shared.cli import assignments, backup, history, runs, scripts, templates, windows
from shared.cli.runtime import Config, fail
from shared.settings import load_settings

app = typer.Typer(
    name="hookshelf",
    help="Backup hook scripts with guarantees: manage the library, run chains, wrap backups.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.add_typer(scripts.app, name="scripts")
app.add_typer(templates.app, name="templates")
app.add_typer(windows.app, name="windows")
assignments.register(app)
runs.register(app)
history.register(app)
backup.register(app)


@app.callback()
def main(
    ctx: typer.Context,
    library: Annotated[
        str | None,
        typer.Option(
            "--library",
            envvar="HOOKSHELF_LIBRARY_TARGET",
            help="Library address: host:port or unix:path. [default: 127.0.0.1:50051]",
            show_default=False,
        ),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            envvar="HOOKSHELF_EXECUTOR_TARGET",
            help="Executor address: unix:path or host:port. [default: unix:./.data/executor.sock]",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="HOOKSHELF_AUTH_TOKEN", help="Bearer token.", show_default=False
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per call (streams excepted).")] = 10.0,
) -> None:
    try:
        settings = load_settings()
    except ValidationError as error:
        problem = error.errors()[0]
        fail(f"bad HOOKSHELF_ setting {'.'.join(map(str, problem['loc']))}: {problem['msg']}", 2)
    ctx.obj = Config(
        library_target=library or settings.library_target,
        executor_target=executor or settings.executor_target,
        auth_token=token if token is not None else settings.auth_token,
        timeout=timeout,
    )
