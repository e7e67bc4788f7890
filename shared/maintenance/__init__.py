"""Tracked maintenance scripts (DESIGN §4): subclass `BaseScript`, end the file with
``run_cli(MyScript())``, call `run_script` from start-up code."""

from shared.maintenance.cli import main, run_cli
from shared.maintenance.environment import (
    EnvironmentNotAllowed,
    current_environment,
    require_environment,
)
from shared.maintenance.runner import Outcome, run_script
from shared.maintenance.script import BaseScript, RollbackNotSupported, VerifyFailed

__all__ = [
    "BaseScript",
    "EnvironmentNotAllowed",
    "Outcome",
    "RollbackNotSupported",
    "VerifyFailed",
    "current_environment",
    "main",
    "require_environment",
    "run_cli",
    "run_script",
]
