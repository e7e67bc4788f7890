"""Running hook steps as child processes: pure asyncio and the OS, no gRPC.

``run_step`` (step.py) is the entry point; the other modules each hold one part of it.
"""

from executor_service.runner.capture import CapturedOutput
from executor_service.runner.environment import (
    SYSTEM_PREFIX,
    build_environment,
    check_variable_name,
)
from executor_service.runner.output import OutputChunk
from executor_service.runner.redaction import Redactor
from executor_service.runner.step import StepResult, StepSpec, run_step

__all__ = [
    "SYSTEM_PREFIX",
    "CapturedOutput",
    "OutputChunk",
    "Redactor",
    "StepResult",
    "StepSpec",
    "build_environment",
    "check_variable_name",
    "run_step",
]
