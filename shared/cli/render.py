"""How the CLI shows things: rich tables for people, JSON for scripts, live hook events."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import json_format, message, timestamp_pb2
from rich.console import Console
from rich.table import Table

from shared.cli.choices import label
from shared.stubs import executor_pb2, library_pb2

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def to_dict(msg: message.Message) -> dict[str, Any]:
    """The proto3 JSON mapping, with the .proto's snake_case field names and every field."""
    return json_format.MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def print_json(value: message.Message | Sequence[message.Message] | dict[str, Any]) -> None:
    if isinstance(value, message.Message):
        data: Any = to_dict(value)
    elif isinstance(value, dict):
        data = value
    else:
        data = [to_dict(item) for item in value]
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def when(stamp: timestamp_pb2.Timestamp) -> str:
    """Local time, to the second; '' when unset."""
    if not stamp.seconds and not stamp.nanos:
        return ""
    return stamp.ToDatetime().astimezone().strftime("%Y-%m-%d %H:%M:%S")


def short_digest(digest: str) -> str:
    """sha256:0123456789ab… — enough to tell versions apart; --json has the full digest."""
    return digest[:19] + "…" if len(digest) > 19 else digest


def seconds(duration_ms: int) -> str:
    return f"{duration_ms / 1000:.1f}s"


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    grid = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    count = 0
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
        count += 1
    if count:
        out.print(grid)
    else:
        out.print(f"[dim]{title or 'nothing'}: none[/dim]" if title else "[dim]none[/dim]")


_STATUS_STYLE = {
    library_pb2.EXECUTION_STATUS_SUCCEEDED: "green",
    library_pb2.EXECUTION_STATUS_FAILED: "red",
    library_pb2.EXECUTION_STATUS_TIMED_OUT: "red",
    library_pb2.EXECUTION_STATUS_CANCELLED: "yellow",
    library_pb2.EXECUTION_STATUS_SKIP_REQUESTED: "yellow",
}


def status_text(status: int) -> str:
    style = _STATUS_STYLE.get(status, "")
    text = label(library_pb2.ExecutionStatus, status) or "?"
    return f"[{style}]{text}[/{style}]" if style else text


class EventPrinter:
    """Shows a HookEvent stream as it comes: progress lines, hook output, the summary.

    Progress goes to `progress` (stdout for `run`/`test`; stderr for `backup`, whose stdout
    belongs to COMMAND); hook stdout to `stdout`, hook stderr in red to stderr.
    With json_lines every event is one JSON object per line on stdout instead.
    """

    def __init__(
        self, *, progress: Console = out, stdout: Console = out, json_lines: bool = False
    ) -> None:
        self.progress = progress
        self.stdout = stdout
        self.json_lines = json_lines
        self.total = 0
        self.base = 0
        self.at_line_start = True

    def show(self, event: executor_pb2.HookEvent) -> None:
        if self.json_lines:
            sys.stdout.write(json.dumps(to_dict(event)) + "\n")
            sys.stdout.flush()
            return
        kind = event.WhichOneof("event")
        if kind == "output":
            self._output(event.output)
            return
        self._end_line()
        if kind == "plan":
            self._plan(event.plan)
        elif kind == "step_started":
            step = event.step_started
            self.line(f"[bold cyan]{self._n(step.step_index)} ▶ {step.script_name}[/bold cyan]")
        elif kind == "step_finished":
            self._finished(event.step_finished)
        elif kind == "step_skipped":
            skip = event.step_skipped
            why = skip.detail or label(executor_pb2.SkipReason, skip.reason)
            self.line(f"[dim]{self._n(skip.step_index)} – {skip.script_name} skipped: {why}[/dim]")
        elif kind == "summary":
            self._summary(event.summary)

    def line(self, text: str) -> None:
        self._end_line()
        self.progress.print(text)

    def note(self, text: str) -> None:
        self.line(f"[bold]hookshelf:[/bold] {text}")

    def warn(self, text: str) -> None:
        self.line(f"[bold yellow]hookshelf: {text}[/bold yellow]")

    def _n(self, index: int) -> str:
        return f"[{index - self.base + 1}/{self.total}]" if self.total else f"[{index}]"

    def _plan(self, plan: executor_pb2.PlanEvent) -> None:
        self.total = len(plan.steps)
        self.base = min((s.index for s in plan.steps), default=0)
        chain = label(library_pb2.HookType, plan.hook_type) or "hook"
        outcome = label(library_pb2.BackupOutcome, plan.outcome)
        names = ", ".join(s.script_name for s in plan.steps) or "no steps"
        suffix = f" for outcome {outcome}" if outcome else ""
        self.line(f"[bold]{chain} chain{suffix}: {self.total} step(s)[/bold] [dim]({names})[/dim]")

    def _output(self, chunk: executor_pb2.OutputEvent) -> None:
        text = chunk.data.decode("utf-8", errors="replace")
        if not text:
            return
        if chunk.stream == executor_pb2.OUTPUT_STREAM_STDERR:
            self._end_line()
            err.print(text, end="", style="red", markup=False)
            if not text.endswith("\n"):
                err.print()
        else:
            self.stdout.print(text, end="", markup=False)
            self.at_line_start = text.endswith("\n")

    def _end_line(self) -> None:
        if not self.at_line_start:
            self.stdout.print()
            self.at_line_start = True

    def _finished(self, step: executor_pb2.StepFinishedEvent) -> None:
        ok = step.status == library_pb2.EXECUTION_STATUS_SUCCEEDED
        mark = "✔" if ok else "✘"
        style = _STATUS_STYLE.get(step.status, "")
        text = (
            f"{self._n(step.step_index)} {mark} {step.script_name} "
            f"{label(library_pb2.ExecutionStatus, step.status)} "
            f"(exit {step.exit_code}, {seconds(step.duration_ms)})"
        )
        if step.error_message:
            text += f": {step.error_message}"
        self.line(f"[{style}]{text}[/{style}]" if style else text)

    def _summary(self, summary: executor_pb2.SummaryEvent) -> None:
        parts = []
        verdict = label(executor_pb2.Verdict, summary.verdict)
        outcome = label(library_pb2.BackupOutcome, summary.outcome)
        if verdict:
            parts.append(f"verdict [bold]{verdict.upper()}[/bold]")
        if outcome:
            parts.append(f"outcome {outcome}")
        parts.append(
            f"{summary.succeeded_count} succeeded, {summary.failed_count} failed, "
            f"{summary.skipped_count} skipped"
        )
        text = " · ".join(parts)
        if summary.message:
            text += f" [dim]— {summary.message}[/dim]"
        self.line(text)
