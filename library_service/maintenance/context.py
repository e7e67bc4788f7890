"""The LibraryContext a maintenance script works with when it runs on its own.

No file mirror: only the replica that owns it writes files (DESIGN §5), and its scan
publishes what a script changed in the database. At start-up the library passes its own
context instead, mirror included.
"""

from __future__ import annotations

from library_service.context import LibraryContext
from library_service.store.database import Database
from shared.settings import load_settings


def standalone_context(db: Database) -> LibraryContext:
    return LibraryContext(settings=load_settings(), database=db, mirror=None)
