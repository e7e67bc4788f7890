"""The environment guard for destructive maintenance scripts.

`ENVIRONMENT` names where this process runs (production, staging, development, test...).
It defaults to production, so a script that must not touch real data refuses unless the
operator says otherwise.
"""

from __future__ import annotations

import os

DEFAULT_ENVIRONMENT = "production"


class EnvironmentNotAllowed(Exception):
    """The script refuses to run in this environment."""


def current_environment() -> str:
    return os.environ.get("ENVIRONMENT", "").strip().lower() or DEFAULT_ENVIRONMENT


def require_environment(*allowed: str) -> str:
    """Raise EnvironmentNotAllowed unless ENVIRONMENT is one of `allowed`; return it.

    Call it first thing in `execute` (or `rollback`) of a destructive script:
    ``require_environment("development", "test")``.
    """
    environment = current_environment()
    names = {name.strip().lower() for name in allowed}
    if environment not in names:
        raise EnvironmentNotAllowed(
            f"refusing to run in environment {environment!r}: allowed only in "
            f"{', '.join(sorted(names))} (set ENVIRONMENT to one of them)"
        )
    return environment
