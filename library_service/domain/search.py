"""Free-text filters: a case-insensitive substring match over some columns.

The user's text is matched literally: ``%``, ``_`` and ``\\`` are escaped, so they find
themselves instead of acting as wildcards. On PostgreSQL each searchable column has a
stored lower-case copy, ``<column>_lower`` (migration 0004), with a pg_trgm GIN index;
the copy is compared with LIKE against the lowered pattern — ILIKE's match, without
lowering every row at query time. SQLite's LIKE already ignores case (for ASCII, which
is all SQLite folds).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BindParameter, ColumnElement, String, func, literal_column, or_

ESCAPE = "\\"


def escape_like(text: str) -> str:
    """``text`` with the LIKE wildcards and the escape character escaped."""
    return text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")


def contains_pattern(text: str) -> str:
    """The LIKE pattern that ``contains_text`` matches ``text`` with."""
    return f"%{escape_like(text)}%"


def lowered_copy(column: Any) -> ColumnElement[str]:
    """The PostgreSQL-only lower-case copy of ``column``. Not in the models, so that
    reading a row never fetches the text twice; only the query names it."""
    return literal_column(f"{column.table.name}.{column.name}_lower", String)


def contains_text(
    columns: list[Any], text: str | BindParameter[str], *, sqlite: bool
) -> ColumnElement[bool]:
    """A condition true when any of ``columns`` contains ``text``, ignoring case.
    ``text`` may instead be a bound parameter to be given ``contains_pattern(text)``
    at execution, for a statement built once and run with any text."""
    pattern = contains_pattern(text) if isinstance(text, str) else text
    if sqlite:
        return or_(*(column.like(pattern, escape=ESCAPE) for column in columns))
    # lower() in the database, as for the stored copies, so both fold case alike.
    lowered = func.lower(pattern)
    return or_(*(lowered_copy(column).like(lowered, escape=ESCAPE) for column in columns))
