"""`hookshelf`: the command line for the script library and the hook executor.

Global options come before the command (`hookshelf --library host:port scripts list`)
or from HOOKSHELF_LIBRARY_TARGET / HOOKSHELF_EXECUTOR_TARGET / HOOKSHELF_AUTH_TOKEN.
Exit codes are listed in docs/cli.md.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from typer.completion import Shells, completion_init, get_completion_script, install

from shared.cli import assignments, backup, history, runs, scripts, templates, windows
from shared.cli.runtime import Config, fail
from shared.client.tls import ClientTls
from shared.credentials import CredentialsError, token_of
from shared.roles import ADMIN
from shared.service_cli import hookshelf_version
from shared.settings import load_settings, settings_error
from shared.tls_files import TlsConfigError

app = typer.Typer(
    name="hookshelf",
    help="Backup hook scripts with guarantees: manage the library, run chains, wrap backups.",
    no_args_is_help=True,
    add_completion=False,  # ours below take the shell as a value
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
# Typer's own completion options take the shell from detecting the parent process only (a
# shell named after them is ignored; with no shell to detect they fail). Ours take it as a
# value, so `hookshelf --show-completion bash` works anywhere, scripts and CI included.
# The classes answering the completion requests themselves are Typer's.
completion_init()


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"hookshelf {hookshelf_version()}")
        raise typer.Exit()


def _show_completion(ctx: typer.Context, shell: Shells | None) -> None:
    if shell is not None and not ctx.resilient_parsing:
        typer.echo(
            get_completion_script(
                prog_name="hookshelf", complete_var="_HOOKSHELF_COMPLETE", shell=shell.value
            )
        )
        raise typer.Exit()


def _install_completion(ctx: typer.Context, shell: Shells | None) -> None:
    if shell is not None and not ctx.resilient_parsing:
        installed_shell, path = install(
            shell=shell.value, prog_name="hookshelf", complete_var="_HOOKSHELF_COMPLETE"
        )
        typer.echo(f"{installed_shell} completion installed in {path}")
        typer.echo("It takes effect in new shells.")
        raise typer.Exit()


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
    tls_ca: Annotated[
        str | None,
        typer.Option(
            "--tls-ca",
            envvar="HOOKSHELF_TLS_CA_FILE",
            help="CA certificate (PEM) to trust: TLS to host:port services.",
            show_default=False,
        ),
    ] = None,
    tls_cert: Annotated[
        str | None,
        typer.Option(
            "--tls-cert",
            envvar="HOOKSHELF_TLS_CLIENT_CERT_FILE",
            help="Client certificate (PEM) for mutual TLS.",
            show_default=False,
        ),
    ] = None,
    tls_key: Annotated[
        str | None,
        typer.Option(
            "--tls-key",
            envvar="HOOKSHELF_TLS_CLIENT_KEY_FILE",
            help="Private key (PEM) of --tls-cert.",
            show_default=False,
        ),
    ] = None,
    tls_server_name: Annotated[
        str | None,
        typer.Option(
            "--tls-server-name",
            envvar="HOOKSHELF_TLS_SERVER_NAME",
            help="Name to verify in the server's certificate instead of the address's host.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per call (streams excepted).")] = 10.0,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            expose_value=False,
            callback=_show_version,
            help="Print the version and exit.",
        ),
    ] = False,
    show_completion: Annotated[
        Shells | None,
        typer.Option(
            "--show-completion",
            metavar="SHELL",
            is_eager=True,
            expose_value=False,
            callback=_show_completion,
            help="Print the completion script for SHELL (bash, zsh, fish, powershell) and exit.",
            show_default=False,
        ),
    ] = None,
    install_completion: Annotated[
        Shells | None,
        typer.Option(
            "--install-completion",
            metavar="SHELL",
            is_eager=True,
            expose_value=False,
            callback=_install_completion,
            help="Install completion for SHELL in your shell's start-up file and exit.",
            show_default=False,
        ),
    ] = None,
) -> None:
    try:
        settings = load_settings()
    except ValidationError as error:
        fail(f"bad HOOKSHELF_ setting: {settings_error(error)}", 2)
    try:
        tls = ClientTls(
            ca_file=tls_ca or settings.tls_ca_file,
            cert_file=tls_cert or settings.tls_client_cert_file,
            key_file=tls_key or settings.tls_client_key_file,
            server_name=tls_server_name or settings.tls_server_name,
        )
        tls.check()
    except TlsConfigError as error:
        fail(str(error), 2)
    try:
        # The CLI acts as admin: --token, else the admin token (or its file).
        admin_token = token if token is not None else token_of(settings, ADMIN)
    except CredentialsError as error:
        fail(f"bad HOOKSHELF_ setting: {error}", 2)
    ctx.obj = Config(
        library_target=library or settings.library_target,
        executor_target=executor or settings.executor_target,
        auth_token=admin_token,
        timeout=timeout,
        tls=tls,
    )
