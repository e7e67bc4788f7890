"""Reading the ``KEY=VALUE`` lines a step wrote to ``$HOOKSHELF_OUTPUT``.

Format, one variable per line: ``KEY=VALUE``, split at the first ``=``; the value is taken
verbatim to the end of the line (no quotes, no escapes, a trailing ``\\r`` dropped). Blank
lines and lines starting with ``#`` are ignored. A later line for the same key wins.
KEY follows the rules of the orchestrator's variables (``[A-Z_][A-Z0-9_]*``, not
``HOOKSHELF_*``: a hook cannot forge a system variable of the steps after it).

Bad lines (no ``=``, a bad key, invalid UTF-8, a NUL) do not fail the step: they are skipped
and each is described in the returned warnings, which the runner puts in
``StepResult.warnings``. Only the first ``MAX_OUTPUT_FILE_BYTES`` are read; a longer file
loses the rest (the cut line included) and says so in a warning.

The file is opened without following symlinks and must be a regular file, so a hook cannot
make the executor read (and return) a file of its choosing or block on a FIFO.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from executor_service.runner.environment import check_variable_name
from shared.errors import InvalidArgument

MAX_OUTPUT_FILE_BYTES = 64 * 1024
_MAX_WARNINGS = 10


def read_output_variables(path: Path) -> tuple[dict[str, str], list[str]]:
    """The variables in the file at ``path`` and warnings about what was skipped."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return {}, []
    except OSError as error:
        return {}, [f"$HOOKSHELF_OUTPUT could not be opened: {error.strerror}"]
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return {}, ["$HOOKSHELF_OUTPUT is not a regular file; ignored"]
        data = _read_at_most(fd, MAX_OUTPUT_FILE_BYTES + 1)
    finally:
        os.close(fd)
    warnings = []
    if len(data) > MAX_OUTPUT_FILE_BYTES:
        data = data[: data.rfind(b"\n", 0, MAX_OUTPUT_FILE_BYTES) + 1]
        warnings.append(
            f"$HOOKSHELF_OUTPUT is longer than {MAX_OUTPUT_FILE_BYTES} bytes; the rest ignored"
        )
    variables, line_warnings = parse_output_variables(data)
    return variables, warnings + line_warnings


def parse_output_variables(data: bytes) -> tuple[dict[str, str], list[str]]:
    """Parse the file's content (see the module docstring)."""
    variables: dict[str, str] = {}
    problems: list[str] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.removesuffix(b"\r")
        if not line.strip() or line.lstrip().startswith(b"#"):
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"line {number}: not valid UTF-8")
            continue
        key, equals, value = text.partition("=")
        if not equals:
            problems.append(f"line {number}: expected KEY=VALUE")
            continue
        try:
            check_variable_name("key", key)
        except InvalidArgument as error:
            problems.append(f"line {number}: {error.violations[0].description}")
            continue
        if "\x00" in value:
            problems.append(f"line {number}: value contains NUL")
            continue
        variables[key] = value
    warnings = [f"$HOOKSHELF_OUTPUT {problem}; line ignored" for problem in problems]
    if len(warnings) > _MAX_WARNINGS:
        more = len(warnings) - _MAX_WARNINGS
        warnings = warnings[:_MAX_WARNINGS] + [f"$HOOKSHELF_OUTPUT: {more} more bad lines"]
    return variables, warnings


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
