"""The command line of tracked scripts (parsing only; the processes are in
tests/service/test_maintenance_processes.py), the environment guard, the checksum."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import pytest

from library_service.maintenance.framework import (
    BaseScript,
    EnvironmentNotAllowed,
    current_environment,
    main,
    require_environment,
)
from library_service.maintenance.framework.cli import parse


class WithOptions(BaseScript):
    def __init__(self) -> None:
        super().__init__("with-options")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--from", dest="source", default=None)

    def check_options(self, command: str) -> str | None:
        return "--from is required" if command == "run" and not self.options.source else None


@pytest.mark.parametrize(
    ("argv", "command", "force"),
    [
        ([], "run", False),
        (["--force"], "run", True),
        (["run"], "run", False),
        (["run", "--force"], "run", True),
    ],
)
def test_bare_and_explicit_run(argv: list[str], command: str, force: bool) -> None:
    parsed_command, args = parse(BaseScript("x"), argv)
    assert (parsed_command, args.force, args.database_url) == (command, force, None)


def test_rollback_and_status() -> None:
    assert parse(BaseScript("x"), ["rollback"])[0] == "rollback"
    command, args = parse(BaseScript("x"), ["status", "--limit", "3"])
    assert (command, args.limit) == ("status", 3)


def test_the_script_options_and_their_check(capsys: pytest.CaptureFixture[str]) -> None:
    script = WithOptions()
    command, args = parse(script, ["--from", "export.json", "--database-url", "sqlite://"])
    assert (command, args.source, args.database_url) == ("run", "export.json", "sqlite://")
    assert script.options.source == "export.json"
    with pytest.raises(SystemExit) as exit_info:
        parse(WithOptions(), ["run"])
    assert exit_info.value.code == 2
    assert "--from is required" in capsys.readouterr().err
    # status takes no script options, rollback does not require them.
    assert parse(WithOptions(), ["rollback"])[0] == "rollback"


@pytest.mark.parametrize("argv", [["--bogus"], ["status", "--force"], ["rollback", "--force"]])
def test_unknown_options_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(BaseScript("x"), argv)
    assert exit_info.value.code == 2


def test_main_is_the_older_name_of_run_cli(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"
    for call in (
        lambda: main(BaseScript("x"), ["status", "--database-url", url]),
        lambda: BaseScript("x").main(["status", "--database-url", url]),
    ):
        with pytest.raises(SystemExit) as exit_info:
            call()
        assert exit_info.value.code == 0


def test_the_environment_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    assert current_environment() == "production"
    with pytest.raises(EnvironmentNotAllowed, match="'production'"):
        require_environment("development", "test")
    assert require_environment("production") == "production"
    monkeypatch.setenv("ENVIRONMENT", " Test ")
    assert require_environment("development", "TEST") == "test"


def test_the_checksum_is_the_sha256_of_the_source(tmp_path: Path) -> None:
    # A script's own source file, by default.
    own = "sha256:" + hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    assert WithOptions().checksum() == own
    one, two = tmp_path / "one.sh", tmp_path / "two.sh"
    one.write_text("a")
    two.write_text("b")

    class Files(BaseScript):
        def source_files(self) -> list[Path]:
            return [one, two]

    script = Files("files")
    before = script.checksum()
    assert before.startswith("sha256:") and len(before) == 71
    two.write_text("c")
    assert script.checksum() != before
