"""The settings each service's --help lists are real settings, and none is forgotten."""

from __future__ import annotations

from shared.service_cli import EXECUTOR, LIBRARY
from shared.settings import Settings

# Read by the `hookshelf` CLI only.
CLI_ONLY = {"executor_target"}


def test_the_listed_settings_are_settings() -> None:
    for service in (LIBRARY, EXECUTOR):
        assert set(service.settings) <= set(Settings.model_fields), service.name
        assert len(set(service.settings)) == len(service.settings), service.name


def test_every_setting_is_listed_by_a_service_or_read_by_the_cli_only() -> None:
    listed = set(LIBRARY.settings) | set(EXECUTOR.settings) | CLI_ONLY
    assert listed == set(Settings.model_fields)
