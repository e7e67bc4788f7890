"""What every servicer part and background task of the library shares."""

from __future__ import annotations

from dataclasses import dataclass

from library_service.domain.mirror import ScriptMirror
from library_service.domain.secrets import SecretCipher
from library_service.store.database import Database
from library_service.store.read_cache import ReadCache
from shared.settings import Settings


@dataclass
class LibraryContext:
    settings: Settings
    database: Database
    # The file mirror, on the one replica that owns it (DESIGN §5); None elsewhere.
    mirror: ScriptMirror | None = None
    # Encrypts and decrypts secret parameter values (domain/secrets.py); loaded at start.
    cipher: SecretCipher | None = None
    # Answers to repeated reads, exact (store/read_cache.py); None: every read queries.
    read_cache: ReadCache | None = None
