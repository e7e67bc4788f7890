"""The library's maintenance scripts run directly from their files, as an operator runs
them: from the repository root or from anywhere else, without PYTHONPATH, against the
database the settings name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAINTENANCE = REPO / "library_service" / "maintenance"

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def run(cwd: Path, script: str, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HOOKSHELF_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_install_templates_from_the_root_and_from_elsewhere(
    database_url: str, tmp_path: Path
) -> None:
    relative = "library_service/maintenance/install_templates.py"
    status = run(REPO, relative, database_url, "status")
    assert status.returncode == 0, status.stderr
    assert "install_templates: never run" in status.stdout

    installed = run(tmp_path, str(MAINTENANCE / "install_templates.py"), database_url)
    assert installed.returncode == 0, installed.stderr
    assert "created: docker-start, docker-stop" in installed.stdout

    again = run(tmp_path, str(MAINTENANCE / "install_templates.py"), database_url, "run")
    assert again.returncode == 0 and "already ran successfully" in again.stdout


def test_import_inline_scripts_and_its_rollback(database_url: str, tmp_path: Path) -> None:
    source = tmp_path / "export.json"
    source.write_text(
        json.dumps(
            [
                {
                    "repository_id": "r1",
                    "pre_backup_script": "echo pre",
                    "post_backup_script": "echo post",
                },
            ]
        )
    )
    script = str(MAINTENANCE / "import_inline_scripts.py")
    usage = run(tmp_path, script, database_url)
    assert usage.returncode == 2 and "--from FILE.json is required" in usage.stderr

    imported = run(tmp_path, script, database_url, "--from", str(source))
    assert imported.returncode == 0, imported.stderr
    assert "2 script(s) and 2 assignment(s) created" in imported.stdout

    undone = run(tmp_path, script, database_url, "rollback")
    assert undone.returncode == 0, undone.stderr
    assert "removed 2 assignment(s) and 2 script(s)" in undone.stdout


def test_prune_executions_dry_run(database_url: str, tmp_path: Path) -> None:
    script = str(MAINTENANCE / "prune_executions.py")
    usage = run(tmp_path, script, database_url, "--dry-run")
    assert usage.returncode == 2 and "--older-than-days" in usage.stderr
    for _ in range(2):  # a recurring job: runs every time
        pruned = run(tmp_path, script, database_url, "--keep-last", "10", "--dry-run")
        assert pruned.returncode == 0, pruned.stderr
        assert "would remove 0 execution(s)" in pruned.stdout
