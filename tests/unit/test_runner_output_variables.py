"""Parsing $HOOKSHELF_OUTPUT: KEY=VALUE lines, bad ones skipped and reported."""

from __future__ import annotations

import os
from pathlib import Path

from executor_service.runner.output_variables import (
    MAX_OUTPUT_FILE_BYTES,
    parse_output_variables,
    read_output_variables,
)


def test_lines_blank_comments_and_duplicates() -> None:
    data = b"A=1\n\n# comment\n  \nB=two words = still b\r\nA=override\nEMPTY=\n"
    variables, warnings = parse_output_variables(data)
    assert variables == {"A": "override", "B": "two words = still b", "EMPTY": ""}
    assert warnings == []


def test_bad_lines_are_skipped_with_warnings() -> None:
    data = b"GOOD=1\nnoequals\nlower=1\nHOOKSHELF_RUN_ID=forged\n\xff\xfe=1\nNUL=a\x00b\n"
    variables, warnings = parse_output_variables(data)
    assert variables == {"GOOD": "1"}
    assert len(warnings) == 5
    assert "line 2" in warnings[0] and "KEY=VALUE" in warnings[0]
    assert "line 4" in warnings[2] and "reserved" in warnings[2]
    assert "UTF-8" in warnings[3]
    assert "NUL" in warnings[4]


def test_many_bad_lines_are_summarised() -> None:
    _, warnings = parse_output_variables(b"bad\n" * 50)
    assert len(warnings) == 11
    assert "40 more" in warnings[-1]


def test_missing_file_is_no_variables(tmp_path: Path) -> None:
    assert read_output_variables(tmp_path / "absent") == ({}, [])


def test_oversized_file_is_cut_at_a_line(tmp_path: Path) -> None:
    path = tmp_path / "out"
    line = b"KEY_%06d=value\n"
    lines = [line % i for i in range(MAX_OUTPUT_FILE_BYTES // len(line % 0) + 100)]
    path.write_bytes(b"".join(lines))
    variables, warnings = read_output_variables(path)
    kept = MAX_OUTPUT_FILE_BYTES // len(line % 0)
    assert len(variables) == kept
    assert "longer than" in warnings[0]


def test_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("STOLEN=1\n")
    link = tmp_path / "out"
    link.symlink_to(target)
    variables, warnings = read_output_variables(link)
    assert variables == {}
    assert "could not be opened" in warnings[0]


def test_fifo_does_not_block(tmp_path: Path) -> None:
    path = tmp_path / "out"
    os.mkfifo(path)
    variables, warnings = read_output_variables(path)
    assert variables == {}
    assert "not a regular file" in warnings[0]
