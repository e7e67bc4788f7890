"""Secret parameter values: encrypted at rest, never returned, decrypted only for plans.

A SECRET parameter's value is stored in ``assignments.parameter_values`` as
``enc:v1:<Fernet token>`` (AES-128-CBC with HMAC-SHA256, from ``cryptography``). Responses
show ``MASK`` in its place; a request that sends ``MASK`` back keeps the stored secret.
Only ResolveHookPlan decrypts, for the executor (domain/plans.py).

The key (DESIGN §3 ``HOOKSHELF_SECRET_KEY``):
- ``HOOKSHELF_SECRET_KEY`` (or the file ``HOOKSHELF_SECRET_KEY_FILE`` names): one Fernet
  key, or several separated by commas (or lines) to rotate: the first encrypts, every one
  decrypts. Fernet keys are url-safe base64, never a comma.
- Otherwise ``<data_dir>/secret.key``, made on first start: mode 0600, written whole under
  a temporary name and then hard-linked into place, so a concurrent starter never reads a
  half-written key and an existing key is never overwritten. The same format, one key per
  line (blank and ``#`` lines skipped).
- Replicas sharing a PostgreSQL database must share the key: set HOOKSHELF_SECRET_KEY on
  every replica (a key file per replica would make each one unable to read the others'
  secrets). The start-up log carries the key's fingerprint to compare replicas by.

A key that cannot decrypt a stored value (lost, rotated away, another replica's) makes
the plan FAILED_PRECONDITION (reason ``SECRET_UNDECRYPTABLE``) naming the assignment and
parameter, never INTERNAL; setting the value again with UpdateAssignment repairs it.
"""

from __future__ import annotations

import hashlib
import os
import stat
import uuid
from collections.abc import Sequence
from pathlib import Path

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shared.errors import FailedPrecondition
from shared.settings import Settings

log = structlog.get_logger("hookshelf.library.secrets")

# What responses show instead of a secret value: fixed, so it tells nothing, not even the
# length. Sent back, it means "keep the stored value".
MASK = "********"
PREFIX = "enc:v1:"
KEY_FILE_NAME = "secret.key"
KEY_FILE_MODE = 0o600


class SecretKeyError(Exception):
    """The configured key cannot be used: the service must not start."""


class SecretUndecryptable(FailedPrecondition):
    """A stored secret that the loaded key cannot decrypt."""

    reason = "SECRET_UNDECRYPTABLE"


def is_encrypted(stored: str | None) -> bool:
    """Is this stored value in the encrypted form?"""
    return isinstance(stored, str) and stored.startswith(PREFIX)


def _fernet(key: bytes, source: str) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError) as error:
        # Never the key itself in the message: it ends up in logs.
        raise SecretKeyError(
            f"{source} is not a Fernet key (32 url-safe base64-encoded bytes, 44 characters; "
            "make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')"
        ) from error


def fingerprint(key: bytes) -> str:
    """A short, non-reversible name of a key, to compare replicas' keys in logs."""
    return hashlib.sha256(b"hookshelf-secret-key:" + key).hexdigest()[:16]


class SecretCipher:
    """Encrypts with the first key; decrypts with any."""

    def __init__(self, keys: Sequence[bytes], *, source: str = "the secret key") -> None:
        if not keys:
            raise SecretKeyError(f"{source} holds no key")
        self._fernet = MultiFernet(
            [_fernet(key, f"{source} (key {index + 1})") for index, key in enumerate(keys)]
        )
        self.fingerprint = fingerprint(keys[0])

    def encrypt(self, value: str) -> str:
        return PREFIX + self._fernet.encrypt(value.encode()).decode("ascii")

    def decrypt(self, stored: str, *, assignment_id: str = "", name: str = "") -> str:
        """The clear value of an encrypted stored value.

        SecretUndecryptable (FAILED_PRECONDITION) when this key cannot read it; the
        message names the assignment and parameter, never the value or the token.
        """
        token = stored[len(PREFIX) :] if is_encrypted(stored) else stored
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError, ValueError) as error:
            raise SecretUndecryptable(
                f"secret parameter {name} of assignment {assignment_id} cannot be decrypted "
                "with the configured key (HOOKSHELF_SECRET_KEY or <data_dir>/secret.key "
                "differs from the one it was stored with); restore that key (a rotated key "
                "goes second in HOOKSHELF_SECRET_KEY), or give the value again with "
                "UpdateAssignment",
                metadata={"assignment_id": assignment_id, "parameter": name},
            ) from error


def _keys_of(text: str, separator: str | None) -> list[bytes]:
    parts = text.split(separator) if separator else text.splitlines()
    return [
        part.strip().encode("ascii", "replace")
        for part in parts
        if part.strip() and not part.strip().startswith("#")
    ]


def key_file(data_dir: Path) -> Path:
    return data_dir / KEY_FILE_NAME


def _create_key_file(path: Path) -> None:
    """Writes a fresh key under a temporary name, then links it into place: the link
    fails when the file exists (another starter won), so a key is never overwritten and
    never seen half-written."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(temporary, flags, KEY_FILE_MODE)
    try:
        try:
            os.fchmod(descriptor, KEY_FILE_MODE)  # whatever the umask
            os.write(descriptor, Fernet.generate_key() + b"\n")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return
    finally:
        temporary.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    log.info("secrets.key_file_created", path=str(path))


def _read_key_file(path: Path) -> list[bytes]:
    mode = path.stat().st_mode
    if stat.S_IMODE(mode) & 0o077:
        log.warning(
            "secrets.key_file_readable_by_others",
            path=str(path),
            mode=oct(stat.S_IMODE(mode)),
            fix=f"chmod 600 {path}",
        )
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as error:
        raise SecretKeyError(f"{path} is not a key file (not ASCII)") from error
    return _keys_of(text, None)


def load_cipher(settings: Settings) -> SecretCipher:
    """The cipher for this service: HOOKSHELF_SECRET_KEY, else the data dir's key file
    (created when missing). SecretKeyError when the key is unusable."""
    if settings.secret_key.strip():
        source = "HOOKSHELF_SECRET_KEY"
        # A file (HOOKSHELF_SECRET_KEY_FILE) may hold one key per line.
        keys = _keys_of(settings.secret_key.replace("\n", ","), ",")
        cipher = SecretCipher(keys, source=source)
    else:
        path = key_file(settings.data_dir)
        source = str(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _create_key_file(path)
        cipher = SecretCipher(_read_key_file(path), source=source)
        if not settings.effective_database_url.startswith("sqlite"):
            log.warning(
                "secrets.key_file_with_shared_database",
                hint="replicas sharing this database must share the key: "
                "set HOOKSHELF_SECRET_KEY on each",
            )
    log.info("secrets.key_loaded", source=source, fingerprint=cipher.fingerprint)
    return cipher


# --- values of an assignment --------------------------------------------------------------


def is_secret(name: str, stored: str | None, secret_names: frozenset[str] | set[str]) -> bool:
    """A value is secret when its parameter is declared SECRET or it is stored encrypted
    (a parameter that was SECRET when the value was given stays protected)."""
    return name in secret_names or is_encrypted(stored)


def masked(
    stored_values: dict[str, str], secret_names: frozenset[str] | set[str]
) -> dict[str, str]:
    """The values as responses show them: every secret one replaced by MASK."""
    return {
        name: MASK if is_secret(name, value, secret_names) else value
        for name, value in stored_values.items()
    }


def seal(
    incoming: dict[str, str],
    stored_values: dict[str, str],
    secret_names: frozenset[str] | set[str],
    cipher: SecretCipher | None,
) -> tuple[dict[str, str], list[str]]:
    """The values to store for a request's ``incoming`` map, and the names whose value was
    MASK with no stored secret to keep (a request error).

    - MASK for a secret value keeps the stored one (encrypted now if it was stored in
      the clear before its parameter became SECRET).
    - A SECRET parameter's value is encrypted; so is any value that looks like the
      encrypted form, so no clear text is ever mistaken for a token.
    - Other values are stored as given (MASK included, for a TEXT parameter it is text).
    """
    result: dict[str, str] = {}
    unkeepable: list[str] = []
    for name, value in incoming.items():
        before = stored_values.get(name)
        if value == MASK and is_secret(name, before, secret_names):
            if before is None:
                unkeepable.append(name)
            elif is_encrypted(before):
                result[name] = before
            else:
                result[name] = _encrypt(cipher, before)
        elif name in secret_names or is_encrypted(value):
            result[name] = _encrypt(cipher, value)
        else:
            result[name] = value
    return result, unkeepable


def _encrypt(cipher: SecretCipher | None, value: str) -> str:
    if cipher is None:  # a caller without the service's context: never store clear text
        raise RuntimeError("no secret key loaded: cannot store a secret value")
    return cipher.encrypt(value)
