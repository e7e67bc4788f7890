"""The environment of a step, built from scratch.

The executor's own ``os.environ`` (its settings, tokens, whatever its supervisor set) is never
passed on: a hook sees a fixed base, then the orchestrator's variables, then parameter values,
then the ``HOOKSHELF_*`` system variables, which nothing can override.

``HOME`` is not set here: ``run_step`` points it at the step's fresh working directory
unless a variable or parameter named ``HOME`` was given. ``run_step`` also adds
``HOOKSHELF_OUTPUT``.
"""

from __future__ import annotations

import re

from shared.errors import InvalidArgument

SYSTEM_PREFIX = "HOOKSHELF_"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_ENVIRONMENT: dict[str, str] = {"PATH": BASE_PATH, "LANG": "C.UTF-8"}
MAX_VARIABLE_NAME_LENGTH = 255

_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


def check_variable_name(field: str, name: str) -> None:
    """A name a hook may be given: ``[A-Z_][A-Z0-9_]*``, not in the reserved ``HOOKSHELF_``
    namespace. Raises InvalidArgument naming ``field`` otherwise."""
    if not _NAME.fullmatch(name):
        raise InvalidArgument(field, f"{name!r} is not a valid name (must match [A-Z_][A-Z0-9_]*)")
    if len(name) > MAX_VARIABLE_NAME_LENGTH:
        raise InvalidArgument(field, f"must be at most {MAX_VARIABLE_NAME_LENGTH} characters")
    if name.startswith(SYSTEM_PREFIX):
        raise InvalidArgument(field, f"{name!r}: the {SYSTEM_PREFIX} prefix is reserved")


def check_variable_value(field: str, value: str) -> None:
    """Environment strings cannot carry NUL; execve would refuse the whole environment."""
    if "\x00" in value:
        raise InvalidArgument(field, "must not contain NUL characters")


def build_environment(
    *, system: dict[str, str], variables: dict[str, str], parameters: dict[str, str]
) -> dict[str, str]:
    """The complete environment of a step (``run_step`` adds ``HOME`` and
    ``HOOKSHELF_OUTPUT``). Later layers win: base, variables, parameters, system.

    Raises InvalidArgument for a bad variable or parameter name or value, ValueError for a
    system variable outside the ``HOOKSHELF_`` namespace (a programming error).
    """
    environment = dict(BASE_ENVIRONMENT)
    for layer, values in (("variables", variables), ("parameters", parameters)):
        for name, value in values.items():
            field = f"{layer}[{name}]"
            check_variable_name(field, name)
            check_variable_value(field, value)
            environment[name] = value
    for name, value in system.items():
        if not name.startswith(SYSTEM_PREFIX) or not _NAME.fullmatch(name):
            raise ValueError(f"system variable {name!r} must be {SYSTEM_PREFIX}[A-Z0-9_]*")
        check_variable_value(f"system[{name}]", value)
        environment[name] = value
    return environment
