"""Running a template for real: bash, a clean environment built like the executor's
(a fixed PATH, HOME, LANG, then the parameters), and stand-in commands that record
their arguments for the tools there is no daemon for here (docker, occ, systemctl)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from library_service.templates import catalog

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run_template(
    name: str,
    parameters: dict[str, str],
    *,
    home: Path,
    path_first: list[Path] = (),  # type: ignore[assignment]
    path: str | None = None,
    timeout: float = 60,
) -> Ran:
    """Run the shipped template `name` with bash; parameters become environment variables."""
    script = catalog.TEMPLATES_DIR / f"{name}.sh"
    search_path = path if path is not None else BASE_PATH
    env = {
        "PATH": ":".join([*(str(p) for p in path_first), search_path]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        **parameters,
    }
    result = subprocess.run(
        ["/bin/bash", str(script)],
        env=env,
        cwd=home,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Ran(result.returncode, result.stdout, result.stderr)


STAND_IN = """#!/usr/bin/python3
import json, os, sys
with open(LOG, "a") as log:
    env = {name: os.environ.get(name) for name in REPORT_ENV}
    log.write(json.dumps({"argv": sys.argv[1:], "env": env}) + "\\n")
sys.stdout.write(STDOUT)
sys.exit(1 if set(sys.argv[1:]) & FAIL_ON else 0)
"""


class StandIn:
    """An executable named like the real command that appends its argv (and the values
    of `report_env`) to a log as JSON, and fails when given one of `fail_on`."""

    def __init__(
        self,
        directory: Path,
        name: str,
        *,
        fail_on: tuple[str, ...] = (),
        report_env: tuple[str, ...] = (),
        stdout: str = "",
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / name
        self.log = directory / f"{name}.calls.jsonl"
        program = STAND_IN.replace("LOG", repr(str(self.log)))
        program = program.replace("REPORT_ENV", repr(list(report_env)))
        program = program.replace("STDOUT", repr(stdout)).replace("FAIL_ON", repr(set(fail_on)))
        self.path.write_text(program)
        os.chmod(self.path, 0o755)

    def calls(self) -> list[list[str]]:
        return [entry["argv"] for entry in self.entries()]

    def entries(self) -> list[dict]:  # type: ignore[type-arg]
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]
