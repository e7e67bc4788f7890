"""examples/orchestrator.py, the example the docs point orchestrator authors to, run for
real against real services: it must keep working as the client evolves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.cli_support import running_stack

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "orchestrator.py"


def test_the_example_orchestrator_wraps_a_failing_backup_in_its_hooks(tmp_path: Path) -> None:
    marks = tmp_path / "marks.txt"
    pre = tmp_path / "pre.sh"
    pre.write_text(f'#!/bin/sh\necho "pre ran" >> {marks}\n')
    post = tmp_path / "post.sh"
    post.write_text(f'#!/bin/sh\necho "post ran: $HOOKSHELF_BACKUP_STATUS" >> {marks}\n')
    with running_stack(executor=True) as stack:
        for args in (
            ("scripts", "create", "ex-pre", "--file", str(pre)),
            ("scripts", "create", "ex-post", "--file", str(post), "--run-on", "always"),
            ("assign", "ex-pre", "-r", "example-repo", "--hook", "pre"),
            ("assign", "ex-post", "-r", "example-repo", "--hook", "post"),
        ):
            made = stack.cli(*args)
            assert made.returncode == 0, made.stderr

        ran = subprocess.run(
            [
                sys.executable,
                str(EXAMPLE),
                "--repository",
                "example-repo",
                "--",
                "sh",
                "-c",
                "exit 3",
            ],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert ran.returncode == 3, ran.stdout + ran.stderr
    assert "step ex-pre: EXECUTION_STATUS_SUCCEEDED" in ran.stdout
    assert "step ex-post: EXECUTION_STATUS_SUCCEEDED" in ran.stdout
    assert marks.read_text().splitlines() == ["pre ran", "post ran: failure"]
