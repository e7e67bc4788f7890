"""Workspaces are reused only when their step left them exactly as it found them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from executor_service.runner.workspace import OUTPUT_FILE_NAME, Workspace, WorkspacePool


def _leave_a_file(ws: Workspace) -> None:
    (ws.directory / "dump.sql").write_text("data")


def _hard_link_the_output(ws: Workspace) -> None:
    os.link(ws.output_file, ws.directory.parent / "stolen")


@pytest.mark.parametrize(
    "what_the_step_did",
    [
        _leave_a_file,
        lambda ws: (ws.directory / ".cache").mkdir(),
        lambda ws: os.chmod(ws.directory, 0o755),
        lambda ws: os.chmod(ws.output_file, 0o644),
        lambda ws: ws.output_file.unlink(),
        lambda ws: (ws.output_file.unlink(), ws.output_file.symlink_to("/etc/hostname")),
        lambda ws: (ws.output_file.unlink(), ws.output_file.mkdir()),
        _hard_link_the_output,
    ],
)
def test_a_workspace_left_changed_is_removed_not_reused(
    tmp_path: Path, what_the_step_did: Callable[[Workspace], object]
) -> None:
    pool = WorkspacePool(tmp_path / "work")
    first = pool.take()
    what_the_step_did(first)
    pool.give_back(first)
    assert not first.directory.exists()
    second = pool.take()
    assert second.directory != first.directory
    assert os.listdir(second.directory) == [OUTPUT_FILE_NAME]


def test_a_clean_workspace_is_reused_with_its_output_emptied(tmp_path: Path) -> None:
    pool = WorkspacePool(tmp_path / "work")
    first = pool.take()
    first.output_file.write_text("TOKEN=secret\n")
    pool.give_back(first)
    second = pool.take()
    assert second == first
    assert second.output_file.read_bytes() == b""
    assert oct(second.directory.stat().st_mode & 0o777) == "0o700"
    assert oct(second.output_file.stat().st_mode & 0o777) == "0o600"


def test_workspaces_made_ahead_are_handed_out_first(tmp_path: Path) -> None:
    pool = WorkspacePool(tmp_path / "work", size=2)
    pool.fill(5)  # never beyond the pool's size
    made = sorted(entry.name for entry in (tmp_path / "work").iterdir())
    assert len(made) == 2 * 2  # directories and script slots
    first, second = pool.take(), pool.take()
    assert {first.directory.name, second.directory.name} < set(made)
    assert os.listdir(first.directory) == [OUTPUT_FILE_NAME] and not os.listdir(first.script_slot)


def test_the_pool_keeps_a_bounded_number(tmp_path: Path) -> None:
    pool = WorkspacePool(tmp_path / "work", size=2)
    taken = [pool.take() for _ in range(4)]
    for workspace in taken:
        pool.give_back(workspace)
    assert len(list((tmp_path / "work").iterdir())) == 2 * 2  # directories and script slots
    pool.clear()
    assert list((tmp_path / "work").iterdir()) == []


@pytest.mark.parametrize(
    "what_the_step_did",
    [
        lambda script: script.unlink(),
        lambda script: (script.unlink(), script.symlink_to("/etc/hostname")),
        lambda script: os.link(script, script.parent.parent / "kept"),
        lambda script: (script.parent / "extra").write_text("x"),
        lambda script: os.chmod(script.parent, 0o755),
    ],
)
def test_a_workspace_whose_script_slot_was_changed_is_removed_not_reused(
    tmp_path: Path, what_the_step_did: Callable[[Path], object]
) -> None:
    """The script slot is checked like the directory: the next step's script is written
    over the file in it, which must be ours alone and never a link to elsewhere."""
    pool = WorkspacePool(tmp_path / "work")
    first = pool.take()
    script = first.install_script("my hook", b"#!/bin/sh\nexit 0\n")
    what_the_step_did(script)
    pool.give_back(first)
    assert not first.directory.exists() and not first.script_slot.exists()
    second = pool.take()
    assert second is not first
    assert second.install_script("next", b"#!/bin/sh\n").read_bytes() == b"#!/bin/sh\n"


def test_a_script_is_never_written_through_a_link(tmp_path: Path) -> None:
    """Even on a workspace nobody checked, installing a script never writes through a
    link the hook put in its place: the slot starts afresh instead."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    pool = WorkspacePool(tmp_path / "work")
    workspace = pool.take()
    script = workspace.install_script("hook", b"#!/bin/sh\nexit 0\n")
    script.unlink()
    script.symlink_to(victim)
    again = workspace.install_script("hook", b"#!/bin/sh\nexit 1\n")
    assert victim.read_text() == "precious"
    assert not again.is_symlink() and again.read_bytes() == b"#!/bin/sh\nexit 1\n"


def test_a_fifo_in_place_of_the_script_does_not_block(tmp_path: Path) -> None:
    """Written over in place, the script file is opened without blocking: a FIFO a hook
    left there (no reader) fails the fast path and the slot is made afresh."""
    workspace = WorkspacePool(tmp_path / "work").take()
    script = workspace.install_script("hook", b"#!/bin/sh\n")
    script.unlink()
    os.mkfifo(script)
    again = workspace.install_script("hook", b"#!/bin/sh\nexit 0\n")
    assert again.is_file() and again.read_bytes() == b"#!/bin/sh\nexit 0\n"
