"""How the CLI shows things: rich tables for people, JSON for scripts, live hook events."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from google.protobuf import json_format, message, timestamp_pb2
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shared.cli.choices import label
from shared.stubs import executor_pb2, library_pb2

OUTPUT_INDENT = "    │ "


def _console(stream: TextIO) -> Console:
    # Piped or redirected output gets wide tables instead of rich's 80 columns.
    width = None if stream.isatty() else int(os.environ.get("COLUMNS", "160"))
    return Console(file=stream, highlight=False, soft_wrap=True, width=width)


out = _console(sys.stdout)
err = _console(sys.stderr)


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
    grid = Table(
        title=Text(title, style="bold") if title else None,
        title_justify="left",
        header_style="bold",
    )
    for column in columns:
        grid.add_column(column, overflow="fold")
    count = 0
    for row in rows:
        # Cells are data, never markup; styled cells come as rich Text.
        grid.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in row))
        count += 1
    if count:
        out.print(grid)
    else:
        out.print(f"{title}: none" if title else "none", style="dim", markup=False)


_STATUS_STYLE: dict[int, str] = {
    library_pb2.EXECUTION_STATUS_SUCCEEDED: "green",
    library_pb2.EXECUTION_STATUS_FAILED: "red",
    library_pb2.EXECUTION_STATUS_TIMED_OUT: "red",
    library_pb2.EXECUTION_STATUS_CANCELLED: "yellow",
    library_pb2.EXECUTION_STATUS_SKIP_REQUESTED: "yellow",
}


def status_text(status: int) -> Text:
    return Text(
        label(library_pb2.ExecutionStatus, status) or "?", style=_STATUS_STYLE.get(status, "")
    )


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
            self.line(f"{self._n(step.step_index)} ▶ {step.script_name}", "bold cyan")
        elif kind == "step_finished":
            self._finished(event.step_finished)
        elif kind == "step_skipped":
            skip = event.step_skipped
            why = skip.detail or label(executor_pb2.SkipReason, skip.reason)
            self.line(f"{self._n(skip.step_index)} – {skip.script_name} skipped: {why}", "dim")
        elif kind == "warning":
            self.warn(f"warning: {event.warning.message}")
        elif kind == "summary":
            self._summary(event.summary)

    def line(self, text: str, style: str | None = None) -> None:
        """One progress line, printed as is (no markup: names and messages are data)."""
        self._end_line()
        self.progress.print(text, style=style, markup=False)

    def note(self, text: str) -> None:
        self.line(f"hookshelf: {text}", "bold")

    def warn(self, text: str) -> None:
        self.line(f"hookshelf: {text}", "bold yellow")

    def _n(self, index: int) -> str:
        return f"[{index - self.base + 1}/{self.total}]" if self.total else f"[{index}]"

    def _plan(self, plan: executor_pb2.PlanEvent) -> None:
        self.total = len(plan.steps)
        self.base = min((s.index for s in plan.steps), default=0)
        chain = label(library_pb2.HookType, plan.hook_type) or "hook"
        outcome = label(library_pb2.BackupOutcome, plan.outcome)
        names = ", ".join(s.script_name for s in plan.steps) or "no steps"
        suffix = f" for outcome {outcome}" if outcome else ""
        self.line(f"{chain} chain{suffix}: {self.total} step(s) ({names})", "bold")

    def _output(self, chunk: executor_pb2.OutputEvent) -> None:
        """Hook output, each line indented under its step; stderr in red."""
        text = chunk.data.decode("utf-8", errors="replace")
        is_err = chunk.stream == executor_pb2.OUTPUT_STREAM_STDERR
        console = err if is_err else self.stdout
        if is_err and console is not self.stdout:
            self._end_line()
        for piece in text.splitlines(keepends=True):
            if self.at_line_start or is_err:
                console.print(OUTPUT_INDENT, end="", style="dim", markup=False)
            console.print(piece, end="", style="red" if is_err else None, markup=False)
            self.at_line_start = piece.endswith("\n")
        if is_err and console is not self.stdout:
            self._end_line()

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
        self.line(text, style or None)

    def _summary(self, summary: executor_pb2.SummaryEvent) -> None:
        verdict = label(executor_pb2.Verdict, summary.verdict)
        outcome = label(library_pb2.BackupOutcome, summary.outcome)
        text = summary.message or (
            f"{summary.succeeded_count} succeeded, {summary.failed_count} failed, "
            f"{summary.skipped_count} skipped"
            + (f"; verdict {verdict.upper()}" if verdict else "")
            + (f"; outcome {outcome}" if outcome else "")
        )
        bad = summary.failed_count or verdict in ("abort", "skip")
        style = "bold yellow" if bad else "bold green"
        self.line(text, style)
