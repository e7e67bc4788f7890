"""Reading a JSON export of legacy inline hooks (as borg-ui keeps them per repository):

    [{"repository_id": "repo-1",
      "pre_backup_script": "docker stop app", "post_backup_script": "docker start app",
      "pre_hook_timeout": 300, "post_hook_timeout": 300,
      "continue_on_hook_failure": false, "skip_on_hook_failure": false}, ...]

``repository_id`` is required; a missing, null or blank script means no hook; timeouts
are optional (1-86400 seconds). The two optional flags say what a failing pre hook did:
continue the backup, or skip it (the default stops it). Every problem is reported with
the entry it is in, all at once, before anything is imported.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.hook_policy import MAX_TIMEOUT_SECONDS
from shared.stubs import library_pb2

MAX_ID_LENGTH = 255
HOOKS = (
    ("pre_backup_script", "pre_hook_timeout", library_pb2.HOOK_TYPE_PRE_BACKUP),
    ("post_backup_script", "post_hook_timeout", library_pb2.HOOK_TYPE_POST_BACKUP),
)


class ExportError(ValueError):
    """The export file cannot be imported; the message lists every problem."""


@dataclass(frozen=True)
class InlineHook:
    """One inline script of one repository."""

    entry: int
    repository_id: str
    hook_type: library_pb2.HookType.ValueType
    content: str
    timeout_seconds: int | None
    on_error: int | None

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.content.encode("utf-8")).hexdigest()

    @property
    def hook_name(self) -> str:
        return "pre-backup" if self.hook_type == library_pb2.HOOK_TYPE_PRE_BACKUP else "post-backup"


def _timeout(value: Any, where: str, problems: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"{where}: must be a whole number of seconds")
        return None
    if not 1 <= value <= MAX_TIMEOUT_SECONDS:
        problems.append(f"{where}: must be 1-{MAX_TIMEOUT_SECONDS} seconds")
        return None
    return value


def _pre_on_error(entry: Mapping[str, Any], where: str, problems: list[str]) -> int | None:
    flags = {}
    for name in ("continue_on_hook_failure", "skip_on_hook_failure"):
        value = entry.get(name, False)
        if not isinstance(value, bool):
            problems.append(f"{where}.{name}: must be true or false")
        flags[name] = value is True
    if flags["skip_on_hook_failure"]:
        return library_pb2.ON_ERROR_SKIP_BACKUP
    if flags["continue_on_hook_failure"]:
        return library_pb2.ON_ERROR_CONTINUE
    return None  # the pre hook default: stop the backup


def _hooks_of(entry: Any, index: int, problems: list[str]) -> list[InlineHook]:
    where = f"[{index}]"
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be an object")
        return []
    repository_id = entry.get("repository_id")
    if isinstance(repository_id, int) and not isinstance(repository_id, bool):
        repository_id = str(repository_id)  # borg-ui's ids are integers
    if not isinstance(repository_id, str) or not repository_id.strip():
        problems.append(f"{where}.repository_id: is required (a string or a number)")
        return []
    if len(repository_id) > MAX_ID_LENGTH:
        problems.append(f"{where}.repository_id: must be at most {MAX_ID_LENGTH} characters")
        return []
    hooks = []
    for script_key, timeout_key, hook_type in HOOKS:
        content = entry.get(script_key)
        timeout = _timeout(entry.get(timeout_key), f"{where}.{timeout_key}", problems)
        if content is None or (isinstance(content, str) and not content.strip()):
            continue
        if not isinstance(content, str):
            problems.append(f"{where}.{script_key}: must be a string")
            continue
        if "\x00" in content:
            problems.append(f"{where}.{script_key}: must not contain NUL characters")
            continue
        on_error = (
            _pre_on_error(entry, where, problems)
            if hook_type == library_pb2.HOOK_TYPE_PRE_BACKUP
            else None
        )
        hooks.append(InlineHook(index, repository_id, hook_type, content, timeout, on_error))
    return hooks


def read_export(path: Path) -> list[InlineHook]:
    """The inline hooks of an export file, in file order. Raises ExportError."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ExportError(f"cannot read {path}: {error.strerror}") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"{path} is not a JSON document: {error}") from error
    if not isinstance(document, list):
        raise ExportError(f"{path}: the document must be a list of repositories")
    problems: list[str] = []
    hooks = [
        hook for index, entry in enumerate(document) for hook in _hooks_of(entry, index, problems)
    ]
    seen: set[tuple[str, int]] = set()
    for hook in hooks:
        key = (hook.repository_id, hook.hook_type)
        if key in seen:
            problems.append(f"[{hook.entry}]: repository {hook.repository_id!r} appears twice")
        seen.add(key)
    if problems:
        raise ExportError(f"{path}: " + "; ".join(problems))
    return hooks
