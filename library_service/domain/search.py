"""Free-text filters: a case-insensitive substring match over some columns.

The user's text is matched literally: ``%``, ``_`` and ``\\`` are escaped, so they find
themselves instead of acting as wildcards. PostgreSQL uses ILIKE, which the pg_trgm GIN
indexes of migration 0003 serve (a query over 100,000 scripts stays in milliseconds);
SQLite's LIKE is already case-insensitive (for ASCII, which is all SQLite folds).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_
from sqlalchemy.orm import InstrumentedAttribute

ESCAPE = "\\"


def escape_like(text: str) -> str:
    """``text`` with the LIKE wildcards and the escape character escaped."""
    return text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")


def contains_text(
    columns: list[InstrumentedAttribute[str]], text: str, *, sqlite: bool
) -> ColumnElement[bool]:
    """A condition true when any of ``columns`` contains ``text``, ignoring case."""
    pattern = f"%{escape_like(text)}%"
    if sqlite:
        return or_(*(column.like(pattern, escape=ESCAPE) for column in columns))
    return or_(*(column.ilike(pattern, escape=ESCAPE) for column in columns))
