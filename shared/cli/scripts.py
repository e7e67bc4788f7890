"""`hookshelf scripts ...`: the script library."""

from __future__ import annotations

import difflib
import getpass
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from google.protobuf import field_mask_pb2

from shared.cli.choices import RunOn, label
from shared.cli.render import out, print_json, short_digest, status_text, table, when
from shared.cli.runtime import CliError, config, run
from shared.client import LibraryClient
from shared.hook_policy import DEFAULT_TIMEOUT_SECONDS
from shared.stubs import library_pb2 as pb

app = typer.Typer(help="Hook scripts: list, show, create, edit, delete, versions, diff.")

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Ref = Annotated[str, typer.Argument(help="Script name (or id).", metavar="SCRIPT")]
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def author() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def read_source(path: Path) -> str:
    """A script's content from a file, or stdin for '-'."""
    data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{path}: not UTF-8 text") from None


@app.command("list")
def list_scripts(
    ctx: typer.Context,
    query: Annotated[str, typer.Option("--query", "-q", help="Text in name/description.")] = "",
    category: Annotated[str, typer.Option(help="Only this category.")] = "",
    templates: Annotated[bool, typer.Option("--templates", help="Templates only.")] = False,
    as_json: Json = False,
) -> None:
    """List scripts by name."""

    async def go() -> None:
        async with config(ctx).library() as library:
            request = pb.ListScriptsRequest(
                page_size=1000, query=query, category=category, templates_only=templates
            )
            scripts = [s async for s in library.iter_scripts(request)]
        if as_json:
            print_json(scripts)
            return
        table(
            None,
            ["Name", "Category", "Ver", "Run on", "Timeout", "Used", "Last used", "Description"],
            (
                (
                    s.name + (" (template)" if s.is_template else ""),
                    s.category,
                    s.version_count,
                    label(pb.RunOn, s.default_run_on) or "success",
                    f"{s.default_timeout_seconds or DEFAULT_TIMEOUT_SECONDS}s",
                    s.usage_count,
                    when(s.last_used_time),
                    s.description,
                )
                for s in scripts
            ),
        )

    run(go())


@app.command()
def show(
    ctx: typer.Context,
    script: Ref,
    content: Annotated[bool, typer.Option(help="Print the content too.")] = True,
    as_json: Json = False,
) -> None:
    """Show a script: settings, parameters, where it is assigned, recent runs, content."""

    async def go() -> None:
        async with config(ctx).library() as library:
            found = await library.find_script(script)
        if as_json:
            print_json(found)
            return
        s = found.script
        out.print(f"[bold]{s.name}[/bold]  [dim]{s.id}[/dim]")
        rows = [
            ("description", s.description),
            ("category", s.category),
            ("digest", s.digest),
            ("versions", s.version_count),
            ("timeout", f"{s.default_timeout_seconds or DEFAULT_TIMEOUT_SECONDS}s"),
            ("run on", label(pb.RunOn, s.default_run_on) or "success"),
            ("template", f"{s.template_name} v{s.template_version}" if s.template_name else ""),
            ("file", s.file_path),
            ("used", f"{s.usage_count} time(s), last {when(s.last_used_time) or 'never'}"),
            ("updated", when(s.update_time)),
        ]
        for key, value in rows:
            if value not in ("", None):
                out.print(f"  {key:<12}{value}", markup=False)
        if s.parameters:
            table(
                "Parameters",
                ["Name", "Type", "Default", "Required", "Description"],
                (
                    (
                        p.name,
                        label(pb.ParameterType, p.type) or "text",
                        p.default_value if p.has_default else "",
                        "yes" if p.required else "",
                        p.description,
                    )
                    for p in s.parameters
                ),
            )
        table(
            "Assigned to",
            ["Repository", "Hook", "Order", "Enabled", "Assignment"],
            (
                (
                    a.repository_id,
                    label(pb.HookType, a.hook_type),
                    a.execution_order,
                    "yes" if a.enabled else "no",
                    a.id,
                )
                for a in found.assignments
            ),
        )
        table(
            "Recent executions",
            ["Started", "Repository", "Hook", "Status", "Exit", "Duration"],
            (
                (
                    when(e.start_time),
                    e.repository_id,
                    label(pb.HookType, e.hook_type),
                    status_text(e.status),
                    e.exit_code,
                    f"{e.duration_ms / 1000:.1f}s",
                )
                for e in found.recent_executions
            ),
        )
        if content:
            out.rule(f"content ({short_digest(s.digest)})")
            out.print(s.content, markup=False, end="" if s.content.endswith("\n") else "\n")

    run(go())


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Unique script name.")],
    file: Annotated[Path, typer.Option("--file", "-f", help="Content ('-' for stdin).")],
    description: Annotated[str, typer.Option(help="What it does.")] = "",
    category: Annotated[str, typer.Option(help="Grouping, e.g. docker, database.")] = "",
    timeout: Annotated[
        int, typer.Option(help=f"Seconds per run (default {DEFAULT_TIMEOUT_SECONDS}).")
    ] = 0,
    run_on: Annotated[RunOn | None, typer.Option(help="Default for post hooks.")] = None,
    as_json: Json = False,
) -> None:
    """Create a script from a file; its first version."""

    async def go() -> None:
        script = pb.Script(
            name=name,
            content=read_source(file),
            description=description,
            category=category,
            default_timeout_seconds=timeout,
            default_run_on=run_on.proto if run_on else 0,  # type: ignore[arg-type]  # .proto is a plain int; the stub wants the enum's ValueType
        )
        async with config(ctx).library() as library:
            created = await library.create_script(
                pb.CreateScriptRequest(script=script, author=author())
            )
        if as_json:
            print_json(created.script)
        else:
            out.print(f"created [bold]{created.script.name}[/bold] ({created.script.digest})")

    run(go())


@app.command()
def update(
    ctx: typer.Context,
    script: Ref,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="New content.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Rename.")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    category: Annotated[str | None, typer.Option()] = None,
    timeout: Annotated[int | None, typer.Option(help="Seconds per run.")] = None,
    run_on: Annotated[RunOn | None, typer.Option(help="Default for post hooks.")] = None,
    as_json: Json = False,
) -> None:
    """Change a script's settings or content (new content is a new version)."""

    async def go() -> None:
        async with config(ctx).library() as library:
            current = (await library.find_script(script, recent_executions=0)).script
            change = pb.Script(id=current.id, etag=current.etag)
            paths = []
            if file is not None:
                change.content = read_source(file)
                paths.append("content")
            for path, value in (
                ("name", name),
                ("description", description),
                ("category", category),
            ):
                if value is not None:
                    setattr(change, path, value)
                    paths.append(path)
            if timeout is not None:
                change.default_timeout_seconds = timeout
                paths.append("default_timeout_seconds")
            if run_on is not None:
                change.default_run_on = run_on.proto  # type: ignore[assignment]  # .proto is a plain int; the stub wants the enum's ValueType
                paths.append("default_run_on")
            if not paths:
                raise CliError("nothing to change: give --file, --name, --description, ...")
            updated = await library.update_script(
                pb.UpdateScriptRequest(
                    script=change,
                    update_mask=field_mask_pb2.FieldMask(paths=paths),
                    author=author(),
                )
            )
        if as_json:
            print_json(updated.script)
        else:
            out.print(f"updated [bold]{updated.script.name}[/bold] ({updated.script.digest})")

    run(go())


@app.command()
def edit(ctx: typer.Context, script: Ref) -> None:
    """Edit the content in $EDITOR (or $VISUAL, else vi); saving makes a new version."""

    async def load(library: LibraryClient) -> pb.Script:
        return (await library.find_script(script, recent_executions=0)).script

    async def go() -> None:
        async with config(ctx).library() as library:
            current = await load(library)
            edited = _edit_in_editor(current.name, current.content)
            if edited == current.content:
                out.print("no change; nothing saved")
                return
            # The etag makes a concurrent edit ABORTED instead of silently lost.
            updated = await library.update_script(
                pb.UpdateScriptRequest(
                    script=pb.Script(id=current.id, etag=current.etag, content=edited),
                    update_mask=field_mask_pb2.FieldMask(paths=["content"]),
                    author=author(),
                )
            )
        out.print(
            f"saved [bold]{updated.script.name}[/bold] version {updated.script.version_count} "
            f"({updated.script.digest})"
        )

    run(go())


def _edit_in_editor(name: str, content: str) -> str:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60]
    with tempfile.TemporaryDirectory(prefix="hookshelf-edit-") as tmp:
        path = Path(tmp) / f"{safe}.sh"
        path.write_text(content, encoding="utf-8")
        try:
            done = subprocess.run([*shlex.split(editor), str(path)], check=False)
        except FileNotFoundError:
            raise CliError(f"editor not found: {editor} (set $EDITOR)") from None
        if done.returncode != 0:
            raise CliError(f"{editor} exited with {done.returncode}; nothing saved")
        return path.read_text(encoding="utf-8")


@app.command()
def delete(
    ctx: typer.Context,
    script: Ref,
    force: Annotated[bool, typer.Option("--force", help="Also remove its assignments.")] = False,
) -> None:
    """Delete a script (refused while assigned, unless --force). Its history stays."""

    async def go() -> None:
        async with config(ctx).library() as library:
            current = (await library.find_script(script, recent_executions=0)).script
            deleted = await library.delete_script(
                pb.DeleteScriptRequest(id=current.id, force=force)
            )
        out.print(f"deleted [bold]{current.name}[/bold]")
        for a in deleted.removed_assignments:
            out.print(f"  removed from {a.repository_id} ({label(pb.HookType, a.hook_type)})")

    run(go())


@app.command()
def versions(ctx: typer.Context, script: Ref, as_json: Json = False) -> None:
    """List a script's versions, newest first."""

    async def go() -> None:
        async with config(ctx).library() as library:
            current = (await library.find_script(script, recent_executions=0)).script
            found = await library.all_versions(current.id)
        if as_json:
            print_json(found)
            return
        table(
            f"{current.name}: versions",
            ["#", "Digest", "Size", "Author", "Created"],
            (
                (v.number, short_digest(v.digest), v.size_bytes, v.author, when(v.create_time))
                for v in found
            ),
        )

    run(go())


@app.command()
def diff(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(help="Digest, or with --script a version number.")],
    new: Annotated[str, typer.Argument(help="Digest, or with --script a version number.")],
    script: Annotated[str, typer.Option("--script", "-s", help="Resolve numbers/prefixes.")] = "",
) -> None:
    """Unified diff between two versions: full digests, or numbers / digest prefixes with
    --script (exit 0 either way)."""

    async def go() -> None:
        async with config(ctx).library() as library:
            known: list[pb.ScriptVersion] = []
            if script:
                current = (await library.find_script(script, recent_executions=0)).script
                known = await library.all_versions(current.id)
            a = await _content(library, _digest(old, known))
            b = await _content(library, _digest(new, known))
        lines = difflib.unified_diff(
            a.content.splitlines(keepends=True),
            b.content.splitlines(keepends=True),
            fromfile=a.digest,
            tofile=b.digest,
        )
        for line in lines:
            if not line.endswith("\n"):
                line += "\n\\ No newline at end of file\n"
            style = {"+": "green", "-": "red", "@": "cyan"}.get(line[:1], "")
            if line.startswith(("+++", "---")):
                style = "bold"
            out.print(line, end="", style=style or None, markup=False)

    run(go())


def _digest(ref: str, known: list[pb.ScriptVersion]) -> str:
    if _DIGEST.match(ref):
        return ref
    if not known:
        raise CliError(f"{ref!r} is not a full sha256:… digest; add --script NAME to use numbers")
    matches = [
        v.digest
        for v in known
        if str(v.number) == ref or v.digest.startswith(ref) or v.digest[7:].startswith(ref)
    ]
    if len(set(matches)) != 1:
        what = "no version" if not matches else "more than one version"
        raise CliError(f"{what} matches {ref!r}")
    return matches[0]


async def _content(library: LibraryClient, digest: str) -> pb.GetScriptContentResponse:
    return await library.get_script_content(pb.GetScriptContentRequest(digest=digest))
