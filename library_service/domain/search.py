"""Free-text filters: a case-insensitive substring match over some columns.

The user's text is matched literally: ``%``, ``_`` and ``\\`` are escaped, so they find
themselves instead of acting as wildcards. PostgreSQL uses ILIKE, which the pg_trgm GIN
indexes of migration 0003 serve (a query over 100,000 scripts stays in milliseconds);
SQLite's LIKE is already case-insensitive (for ASCII, which is all SQLite folds).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BindParameter, ColumnElement, or_

ESCAPE = "\\"


def escape_like(text: str) -> str:
    """``text`` with the LIKE wildcards and the escape character escaped."""
    return text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")


def contains_pattern(text: str) -> str:
    """The LIKE pattern that ``contains_text`` matches ``text`` with."""
    return f"%{escape_like(text)}%"


def contains_text(
    columns: list[Any], text: str | BindParameter[str], *, sqlite: bool
) -> ColumnElement[bool]:
    """A condition true when any of ``columns`` contains ``text``, ignoring case.
    ``text`` may instead be a bound parameter to be given ``contains_pattern(text)``
    at execution, for a statement built once and run with any text."""
    pattern = contains_pattern(text) if isinstance(text, str) else text
    if sqlite:
        return or_(*(column.like(pattern, escape=ESCAPE) for column in columns))
    return or_(*(column.ilike(pattern, escape=ESCAPE) for column in columns))
