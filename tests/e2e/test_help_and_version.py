"""`--help` and `--version` as an operator types them: the services answer without
starting (no data directory, state directory or socket appears), refuse any other argument
with a usage error, and the `hookshelf` CLI prints its version and completion scripts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.service_cli import hookshelf_version
from tests.e2e.cli_support import HOOKSHELF, clean_env

SERVICES = {
    "library_service": ("hookshelf-library", "HOOKSHELF_LIBRARY_LISTEN"),
    "executor_service": ("hookshelf-executor", "HOOKSHELF_EXECUTOR_LISTEN"),
}


def run(command: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run to completion in cwd, every path the services would create pointing into it."""
    env = clean_env(
        HOOKSHELF_DATA_DIR=str(cwd / "data"),
        HOOKSHELF_EXECUTOR_STATE_DIR=str(cwd / "executor"),
        HOOKSHELF_EXECUTOR_LISTEN=f"unix:{cwd}/executor.sock",
        HOOKSHELF_LOG_FORMAT="json",
        **extra,
    )
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def service(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", module, *args], cwd)


@pytest.mark.parametrize("module", SERVICES)
def test_help_prints_the_usage_and_the_settings_and_starts_nothing(
    module: str, tmp_path: Path
) -> None:
    result = service(module, "--help", cwd=tmp_path)
    assert result.returncode == 0, result
    assert result.stdout.startswith(f"usage: python -m {module}"), result.stdout
    assert "HOOKSHELF_* environment variable" in result.stdout
    assert "README.md" in result.stdout
    assert SERVICES[module][1] in result.stdout
    assert "HOOKSHELF_LOG_LEVEL" in result.stdout
    assert result.stderr == ""
    assert list(tmp_path.iterdir()) == []


def test_each_service_lists_its_own_settings(tmp_path: Path) -> None:
    library = service("library_service", "--help", cwd=tmp_path).stdout
    executor = service("executor_service", "--help", cwd=tmp_path).stdout
    assert "HOOKSHELF_DATABASE_URL" in library
    assert "HOOKSHELF_DATABASE_URL" not in executor
    assert "HOOKSHELF_EXECUTOR_STATE_DIR" in executor
    assert "HOOKSHELF_EXECUTOR_STATE_DIR" not in library


@pytest.mark.parametrize("module", SERVICES)
def test_version_prints_the_name_and_version_and_starts_nothing(
    module: str, tmp_path: Path
) -> None:
    result = service(module, "--version", cwd=tmp_path)
    assert result.returncode == 0, result
    assert result.stdout == f"{SERVICES[module][0]} {hookshelf_version()}\n"
    assert hookshelf_version() != "unknown"  # the package is installed (make setup)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("module", SERVICES)
@pytest.mark.parametrize("argument", ["--bogus", "serve"])
def test_any_other_argument_is_a_usage_error_and_starts_nothing(
    module: str, argument: str, tmp_path: Path
) -> None:
    result = service(module, argument, cwd=tmp_path)
    assert result.returncode == 2, result
    assert "usage:" in result.stderr
    assert argument in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_cli_prints_its_version(tmp_path: Path) -> None:
    result = run([str(HOOKSHELF), "--version"], tmp_path)
    assert result.returncode == 0, result
    assert result.stdout == f"hookshelf {hookshelf_version()}\n"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_cli_prints_a_completion_script_for_the_shell_given(shell: str, tmp_path: Path) -> None:
    result = run([str(HOOKSHELF), "--show-completion", shell], tmp_path)
    assert result.returncode == 0, result
    assert "complete" in result.stdout
    assert "hookshelf" in result.stdout
    assert "_HOOKSHELF_COMPLETE" in result.stdout
    if shell == "bash":
        assert "complete -o default -F _hookshelf_completion hookshelf" in result.stdout


def test_the_bash_completion_answers_with_commands(tmp_path: Path) -> None:
    """What the bash script runs on <TAB>: `hookshelf scr<TAB>` completes to scripts."""
    result = run(
        [str(HOOKSHELF)],
        tmp_path,
        COMP_WORDS="hookshelf scr",
        COMP_CWORD="1",
        _HOOKSHELF_COMPLETE="complete_bash",
    )
    assert result.returncode == 0, result
    assert result.stdout.split() == ["scripts"]


def test_the_cli_refuses_an_unknown_shell(tmp_path: Path) -> None:
    result = run([str(HOOKSHELF), "--show-completion", "tcsh"], tmp_path)
    assert result.returncode == 2, result
    assert result.stdout == ""
