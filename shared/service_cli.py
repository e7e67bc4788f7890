"""The services' command line: `--help` and `--version`, nothing else.

A service is configured only through HOOKSHELF_* environment variables, so its command
line has nothing to set: it answers `--help` and `--version` and refuses anything else as
a usage error (exit 2), all before a database, a socket or a thread is opened.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from shared.settings import Settings

DISTRIBUTION = "hookshelf"


def hookshelf_version() -> str:
    """The installed `hookshelf` distribution's version ("unknown" in a bare source tree)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Service:
    module: str  # what `python -m` runs
    name: str  # what `--version` calls it
    summary: str
    settings: tuple[str, ...]  # the Settings fields this service reads


_COMMON = (
    "auth_token",
    "auth_token_file",
    "executor_token",
    "executor_token_file",
    "reader_token",
    "reader_token_file",
    "cert_roles",
    "log_level",
    "log_format",
    "shutdown_grace_seconds",
    "metrics_listen",
)
_SERVER_TLS = ("tls_cert_file", "tls_key_file", "tls_client_ca_file")
_CLIENT_TLS = ("tls_ca_file", "tls_client_cert_file", "tls_client_key_file", "tls_server_name")

LIBRARY = Service(
    module="library_service",
    name="hookshelf-library",
    summary="The Hookshelf script library: a gRPC service that stores hook scripts, their "
    "versions, assignments, maintenance windows and the execution history.",
    settings=(
        "data_dir",
        "database_url",
        "database_url_file",
        "library_listen",
        "library_health_listen",
        *_SERVER_TLS,
        "secret_key",
        "secret_key_file",
        *_COMMON,
        "mirror_enabled",
        "mirror_scan_seconds",
        "install_templates",
        "read_cache_bytes",
    ),
)

EXECUTOR = Service(
    module="executor_service",
    name="hookshelf-executor",
    summary="The Hookshelf hook executor: a gRPC service that runs the pre and post hook "
    "chains of backup runs, using scripts it fetches from the library.",
    settings=(
        "executor_listen",
        "executor_health_listen",
        "executor_state_dir",
        "executor_max_concurrent_runs",
        "executor_plan_max_age_seconds",
        "executor_journal_retention_seconds",
        "executor_journal_key",
        *_SERVER_TLS,
        "library_target",
        *_CLIENT_TLS,
        *_COMMON,
    ),
)


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value == "":
        return "empty"
    if isinstance(value, Path):
        return str(value) if value.is_absolute() else f"./{value}"
    return str(value)


def _paragraphs(*texts: str) -> str:
    return "\n\n".join(textwrap.fill(text, width=88) for text in texts)


def _settings_help(service: Service) -> str:
    lines = []
    for name in service.settings:
        field = Settings.model_fields[name]
        lines.append(f"  HOOKSHELF_{name.upper()}  (default: {_shown(field.default)})")
        if field.description:
            lines.append(f"      {field.description}")
    return "\n".join(lines)


def parser(service: Service) -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog=f"python -m {service.module}",
        description=_paragraphs(
            service.summary,
            "It takes no arguments: every setting is a HOOKSHELF_* environment variable "
            "(README.md, section Configuration, has the full table). It serves until "
            "SIGTERM or SIGINT, then drains within HOOKSHELF_SHUTDOWN_GRACE_SECONDS.",
        ),
        epilog=f"settings this service reads:\n{_settings_help(service)}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    result.add_argument(
        "--version", action="version", version=f"{service.name} {hookshelf_version()}"
    )
    return result


def parse_service_args(service: Service, argv: Sequence[str] | None = None) -> None:
    """Answer --help / --version (exit 0) or refuse other arguments (exit 2); else return."""
    parser(service).parse_args(argv)
