"""Reading the JSON export of legacy inline hooks: what becomes a hook, and every
problem reported with its entry before anything is imported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from library_service.maintenance.inline_export import ExportError, read_export
from shared.stubs import library_pb2


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(document))
    return path


def test_scripts_timeouts_and_failure_policy(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {
                "repository_id": "r1",
                "pre_backup_script": "echo pre",
                "post_backup_script": "echo post",
                "pre_hook_timeout": 60,
                "post_hook_timeout": 120,
                "skip_on_hook_failure": True,
            },
            {
                "repository_id": 7,
                "pre_backup_script": "echo pre",
                "post_backup_script": None,
                "continue_on_hook_failure": True,
            },
            {"repository_id": "r3", "pre_backup_script": "   ", "post_backup_script": ""},
        ],
    )
    hooks = read_export(path)
    assert [
        (h.entry, h.repository_id, h.hook_type, h.content, h.timeout_seconds, h.on_error)
        for h in hooks
    ] == [
        (
            0,
            "r1",
            library_pb2.HOOK_TYPE_PRE_BACKUP,
            "echo pre",
            60,
            library_pb2.ON_ERROR_SKIP_BACKUP,
        ),
        (0, "r1", library_pb2.HOOK_TYPE_POST_BACKUP, "echo post", 120, None),
        (1, "7", library_pb2.HOOK_TYPE_PRE_BACKUP, "echo pre", None, library_pb2.ON_ERROR_CONTINUE),
    ]
    assert hooks[0].digest == hooks[2].digest != hooks[1].digest


def test_every_problem_is_reported_with_its_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            "not an object",
            {"pre_backup_script": "x"},
            {"repository_id": "r", "pre_backup_script": 5, "post_hook_timeout": 0},
            {
                "repository_id": "s",
                "pre_backup_script": "x",
                "pre_hook_timeout": "60",
                "skip_on_hook_failure": "yes",
            },
            {"repository_id": "t", "pre_backup_script": "x"},
            {"repository_id": "t", "pre_backup_script": "y"},
        ],
    )
    with pytest.raises(ExportError) as error:
        read_export(path)
    message = str(error.value)
    for problem in (
        "[0]: must be an object",
        "[1].repository_id: is required",
        "[2].pre_backup_script: must be a string",
        "[2].post_hook_timeout: must be 1-86400 seconds",
        "[3].pre_hook_timeout: must be a whole number of seconds",
        "[3].skip_on_hook_failure: must be true or false",
        "[5]: repository 't' appears twice",
    ):
        assert problem in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [("{not json", "is not a JSON document"), ('{"a": 1}', "must be a list")],
)
def test_a_file_that_is_no_export(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "export.json"
    path.write_text(text)
    with pytest.raises(ExportError, match=problem):
        read_export(path)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="cannot read"):
        read_export(tmp_path / "missing.json")
