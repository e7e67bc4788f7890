"""The database a maintenance script runs against: the library's, schema brought to head.

The URL comes from the settings (HOOKSHELF_DATABASE_URL, else the SQLite file in
HOOKSHELF_DATA_DIR), so a script finds the same database the library serves from. The
library's modules are imported here, when a script runs, so `shared` itself stays free of
them at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from shared.settings import load_settings

if TYPE_CHECKING:
    from library_service.store.database import Database


def configured_url() -> str:
    return load_settings().effective_database_url


async def open_database(url: str | None = None) -> Database:
    """Upgrade the schema (scripts may run before the library ever started), then open."""
    from library_service.store import migrate
    from library_service.store.database import Database

    url = url or configured_url()
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    await migrate.upgrade(url)
    return Database(url)
