"""The database a maintenance script runs against: the library's, schema brought to head.

The URL comes from the settings (HOOKSHELF_DATABASE_URL, else the SQLite file in
HOOKSHELF_DATA_DIR), so a script finds the same database the library serves from.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from library_service.store import migrate
from library_service.store.database import Database
from shared.settings import load_settings


def configured_url() -> str:
    return load_settings().effective_database_url


async def open_database(url: str | None = None) -> Database:
    """Upgrade the schema (scripts may run before the library ever started), then open."""
    url = url or configured_url()
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    await migrate.upgrade(url)
    return Database(url)
