"""Cron validation and next-run computation of maintenance windows, without a server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from library_service.domain import windows
from library_service.store import models
from shared.errors import InvalidArgument


@pytest.mark.parametrize(
    ("expression", "normalised"),
    [
        ("*/5 * * * *", "*/5 * * * *"),
        ("0 3 * * 1-5", "0 3 * * 1-5"),
        ("  30   2 1 * *  ", "30 2 1 * *"),
        ("0 0 29 2 *", "0 0 29 2 *"),  # leap days exist
        ("15 4 * jan,jul sun", "15 4 * jan,jul sun"),
    ],
)
def test_valid_expressions_are_accepted(expression: str, normalised: str) -> None:
    assert windows.check_cron("window.cron_expression", expression) == normalised


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "   ",
        "* * * *",  # four fields
        "0 0 * * * *",  # six (seconds) fields
        "@daily",  # macros: not five fields
        "61 * * * *",
        "* 24 * * *",
        "0 0 0 * *",
        "a b c d e",
        "0 0 30 2 *",  # never matches
        "* * * * " + "1," * 200 + "1",  # over-long
    ],
)
def test_invalid_expressions_name_the_field(expression: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        windows.check_cron("window.cron_expression", expression)
    assert caught.value.violations[0].field == "window.cron_expression"


def _window(cron: str, enabled: bool = True) -> models.MaintenanceWindow:
    return models.MaintenanceWindow(cron_expression=cron, enabled=enabled)


def test_next_run_is_the_next_match_after_now_in_utc() -> None:
    now = datetime(2026, 3, 1, 12, 7, 30, tzinfo=UTC)
    assert windows.next_run(_window("*/15 * * * *"), now) == datetime(
        2026, 3, 1, 12, 15, tzinfo=UTC
    )
    assert windows.next_run(_window("0 3 * * *"), now) == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    # A naive "now" (as SQLite hands back) is taken as UTC.
    assert windows.next_run(_window("0 3 * * *"), now.replace(tzinfo=None)) == datetime(
        2026, 3, 2, 3, 0, tzinfo=UTC
    )


def test_a_disabled_window_has_no_next_run() -> None:
    assert windows.next_run(_window("* * * * *", enabled=False), datetime.now(UTC)) is None
