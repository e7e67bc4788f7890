"""Tracked maintenance scripts (docs/design.md §4): subclass `BaseScript`, end the file
with ``run_cli(MyScript())``, call `run_script` from start-up code.

The modules import one way only: ``script`` (the contract) ← ``tracker``, ``locks``,
``store`` ← ``runner`` ← ``cli`` (which adds the command line, and `BaseScript.main`)."""

from library_service.maintenance.framework.cli import BaseScript, main, run_cli
from library_service.maintenance.framework.environment import (
    EnvironmentNotAllowed,
    current_environment,
    require_environment,
)
from library_service.maintenance.framework.runner import Outcome, run_script
from library_service.maintenance.framework.script import (
    RollbackNotSupported,
    TrackedScript,
    VerifyFailed,
)

__all__ = [
    "BaseScript",
    "EnvironmentNotAllowed",
    "Outcome",
    "RollbackNotSupported",
    "TrackedScript",
    "VerifyFailed",
    "current_environment",
    "main",
    "require_environment",
    "run_cli",
    "run_script",
]
