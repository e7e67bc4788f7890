"""The file mirror: every script as ``<data_dir>/scripts/library/<slug>.sh``, mode 0755.

The database is the record of content; the files are its mirror, kept so that people and
git can read and edit scripts where they live. Hence:

- Files are written after the database commit (``publish``), atomically: a temp file in
  the same directory, fsync, ``os.replace``, fsync of the directory. A reader sees the old
  file or the new one, never a part; a crash leaves at most a hidden ``.*.tmp`` file,
  removed at the next start.
- A file changed by someone else is an edit: its content becomes a new version with author
  ``external-edit``. The background scan finds edits within ``scan_seconds``; reads and
  writes of one script (GetScript, UpdateScript, DeleteScript) check that script's file
  first (``refresh``), so the API never answers with content older than the file.
- What counts as an edit: the mirror remembers, per script, the file it last wrote or
  checked (stat stamp and digest). A file whose bytes differ from those and from the
  current version was edited. At start-up nothing is remembered yet: a file holding one
  of the script's earlier versions is stale (the database moved on while this process was
  down) and is rewritten; any other difference is an edit made while it was down.
- A change made through the API wins over an edit that was not imported yet: ``publish``
  overwrites. An edit of a template's file is not imported but put back (templates are
  read-only, as through the API). An edit the API would reject (empty, NUL, not UTF-8, over 1 MiB) is logged
  and left alone until it is fixed or the script changes through the API.
- Only one replica may own the mirror (DESIGN §5); the others run without one and their
  changes reach the files through the owner's scan, which also recreates missing files.
- Slugs are made by the server (domain.slugs), and ``path_for`` refuses anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from sqlalchemy import select

from library_service.domain import etags, slugs, versions
from library_service.store import models
from library_service.store.database import Database
from shared.errors import InvalidArgument
from shared.hook_policy import MAX_CONTENT_BYTES

log = structlog.get_logger("hookshelf.mirror")

EXTERNAL_EDIT_AUTHOR = "external-edit"
FILE_MODE = 0o755
SUFFIX = ".sh"
TEMP_SUFFIX = ".tmp"
DEFAULT_SCAN_SECONDS = 2.0

# (inode, size, mtime_ns, mode): changes whenever the file is replaced, written,
# touched or chmod-ed.
Stamp = tuple[int, int, int, int]


def mirror_root(data_dir: Path) -> Path:
    """The directory that holds the mirrored scripts."""
    return data_dir.resolve() / "scripts" / "library"


def _stamp_of(result: os.stat_result) -> Stamp:
    return (result.st_ino, result.st_size, result.st_mtime_ns, result.st_mode)


def stamp(path: Path) -> Stamp | None:
    """The stamp of what is at ``path`` (a symlink's own, not its target's), None when
    nothing is."""
    try:
        return _stamp_of(os.lstat(path))
    except FileNotFoundError:
        return None


def write_atomic(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replaces ``path`` with ``data`` so that no reader ever sees a partial file, and the
    new file survives a crash once this returns."""
    directory = path.parent
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)  # mkstemp makes 0600; umask does not apply here
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    # The rename is durable only once the directory entry is.
    directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)


def _read_settled(path: Path) -> tuple[bytes, Stamp] | None:
    """The regular file's bytes (at most one more than content may have) and stamp, or
    None when it vanished, became something else or changed while being read (someone is
    writing it in place: look again at the next scan). Never follows a symlink: the
    mirror must not import whatever file a link points to."""
    try:
        before = stamp(path)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            with os.fdopen(fd, "rb", closefd=False) as handle:
                data = handle.read(MAX_CONTENT_BYTES + 1)
        finally:
            os.close(fd)
        after = stamp(path)
    except OSError:  # gone (ENOENT) or swapped for a symlink (ELOOP) meanwhile
        return None
    if before is None or before != after:
        return None
    return data, after


@dataclass
class _Seen:
    """What the mirror last did with one script's file."""

    slug: str
    synced_digest: str  # the database's digest the file was checked or written against
    stamp: Stamp  # the file's stamp then
    file_digest: str  # the file's digest then (differs from synced for a rejected edit)


@dataclass(frozen=True)
class _Target:
    """Where and what the file of a script should be, per the database."""

    id: str
    slug: str
    digest: str


class ScriptMirror:
    """Keeps ``root`` in step with the database. Operations on files are serialized by one
    lock (there is one owner process); the scan runs as a background task."""

    def __init__(
        self, root: Path, database: Database, scan_seconds: float = DEFAULT_SCAN_SECONDS
    ) -> None:
        self.root = root
        self.database = database
        self.scan_seconds = scan_seconds
        self._seen: dict[str, _Seen] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def path_for(self, slug: str) -> Path:
        """The file of a slug. Only server-made slugs are accepted: never a client string."""
        if not slugs.is_slug(slug):
            raise ValueError(f"not a slug: {slug!r}")
        return self.root / f"{slug}{SUFFIX}"

    # --- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Resync from the database (missing or stale files rewritten, edits made while
        the service was down imported), then scan every ``scan_seconds``."""
        self.root.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._remove_temp_files)
        await self.scan()
        if self.scan_seconds > 0:
            self._task = asyncio.create_task(self._scan_forever(), name="mirror-scan")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _scan_forever(self) -> None:
        while True:
            await asyncio.sleep(self.scan_seconds)
            try:
                await self.scan()
            except Exception:  # a failed scan must not end the loop
                log.exception("mirror.scan_failed")

    def _remove_temp_files(self) -> None:
        for entry in os.scandir(self.root):
            if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                log.info("mirror.temp_file_removed", file=entry.name)

    # --- the three entry points ----------------------------------------------------------

    async def scan(self) -> None:
        """One pass over every script: import edits, recreate missing files, follow
        renames and deletions made by other replicas."""
        S = models.Script
        self.root.mkdir(parents=True, exist_ok=True)  # in case someone removed it
        # Read-only: it must not queue behind a writer for the write lock (on SQLite a
        # unit of work begins IMMEDIATE), nor hold up shutdown while one writes.
        async with self.database.reading() as session:
            rows = [
                _Target(*row)
                for row in await session.execute(select(S.id, S.slug, S.current_digest))
            ]
        stamps = await asyncio.to_thread(self._stamps)
        for target in rows:
            seen = self._seen.get(target.id)
            if (
                seen is not None
                and seen.slug == target.slug
                and seen.synced_digest == target.digest
                and stamps.get(target.slug) == seen.stamp
            ):
                continue  # untouched since it was last synced: the common case, no I/O
            if seen is None and await self._matches(target, stamps.get(target.slug)):
                continue  # first sight (start-up) of a file that is current: no query
            await self._sync_logged(target.id)
        for gone in set(self._seen) - {target.id for target in rows}:
            await self._sync_logged(gone)

    async def _matches(self, target: _Target, found: Stamp | None) -> bool:
        """Remembers and returns True when the file holds the target's content, judged
        from the scan's snapshot alone (saves a query per script at start-up)."""
        if found is None or not stat.S_ISREG(found[3]) or stat.S_IMODE(found[3]) != FILE_MODE:
            return False
        if not slugs.is_slug(target.slug):
            return False  # the full sync reports it
        async with self._lock:
            read = await asyncio.to_thread(_read_settled, self.path_for(target.slug))
            if read is None or versions.digest_of(read[0]) != target.digest:
                return False
            self._seen.setdefault(
                target.id, _Seen(target.slug, target.digest, read[1], target.digest)
            )
            return True

    async def _sync_logged(self, script_id: str) -> None:
        """One script of a scan: its trouble (a full disk, say) must not stop the rest."""
        try:
            await self._locked_sync(script_id, import_edits=True)
        except Exception:  # the next scan tries again
            log.exception("mirror.sync_failed", script_id=script_id)

    async def refresh(self, *, script_id: str = "", name: str = "") -> None:
        """Imports an edit of one script's file before the script is read or changed."""
        if not script_id:
            async with self.database.reading() as session:
                found = await session.scalar(
                    select(models.Script.id).where(models.Script.name == name)
                )
            if found is None:
                return  # the read will say NOT_FOUND
            script_id = found
        seen = self._seen.get(script_id)
        if seen is not None and stamp(self.path_for(seen.slug)) == seen.stamp:
            return
        try:
            await self._locked_sync(script_id, import_edits=True)
        except (OSError, ValueError):  # the read goes on from the database, the record
            log.exception("mirror.refresh_failed", script_id=script_id)

    async def publish(self, script_id: str) -> None:
        """After a commit: make the script's file what the database says (written,
        renamed or removed). The API's change wins over an edit not imported yet. Never
        raises: the change is committed, and a failed write is retried by the scan."""
        try:
            await self._locked_sync(script_id, import_edits=False)
        except Exception:  # the change is committed; the scan repairs the mirror later
            log.exception("mirror.publish_failed", script_id=script_id)

    # --- reconciling one script ----------------------------------------------------------

    def _stamps(self) -> dict[str, Stamp]:
        found: dict[str, Stamp] = {}
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name.endswith(SUFFIX) and not entry.name.startswith("."):
                    with contextlib.suppress(FileNotFoundError):
                        found[entry.name[: -len(SUFFIX)]] = _stamp_of(
                            entry.stat(follow_symlinks=False)
                        )
        return found

    async def _locked_sync(self, script_id: str, *, import_edits: bool) -> None:
        async with self._lock:
            S = models.Script
            async with self.database.transaction() as session:
                row = (
                    await session.execute(
                        select(S.id, S.slug, S.current_digest).where(S.id == script_id)
                    )
                ).first()
            await self._sync(script_id, _Target(*row) if row else None, import_edits)

    async def _sync(self, script_id: str, target: _Target | None, import_edits: bool) -> None:
        seen = self._seen.get(script_id)
        if seen is not None and (target is None or seen.slug != target.slug):
            # Deleted or renamed: the old file goes, unless its slug was taken over.
            await self._remove_unless_taken(seen.slug)
            del self._seen[script_id]
            seen = None
        if target is None:
            return
        path = self.path_for(target.slug)
        current = stamp(path)
        if current is None:
            await self._write(target, path)
            return
        if not stat.S_ISREG(current[3]):
            # A symlink or the like is nobody's edit of the script: put the file back.
            log.warning("mirror.not_a_regular_file", script_id=target.id, file=str(path))
            await self._write(target, path)
            return
        if seen is not None and current == seen.stamp:
            if seen.synced_digest != target.digest:
                await self._write(target, path)  # the database moved on
            return
        read = await asyncio.to_thread(_read_settled, path)
        if read is None:
            return  # being written right now: the next scan looks again
        data, current = read
        digest = versions.digest_of(data)
        if digest == target.digest:
            await self._keep(target, path, current)
        elif seen is not None and digest == seen.file_digest:
            await self._write(target, path)  # touched, not edited; the database moved on
        elif not import_edits:
            await self._write(target, path)
        elif seen is None and await self._is_earlier_version(target.id, digest):
            await self._write(target, path)  # a stale copy, e.g. after a restart
        else:
            await self._import(target, data, digest, current)

    async def _is_earlier_version(self, script_id: str, digest: str) -> bool:
        async with self.database.transaction() as session:
            return digest in await versions.digests_of_script(session, script_id)

    async def _keep(self, target: _Target, path: Path, current: Stamp) -> None:
        """The file holds the current content; only its mode may need repair."""
        if stat.S_IMODE(current[3]) != FILE_MODE:
            os.chmod(path, FILE_MODE)
            current = stamp(path) or current
        self._seen[target.id] = _Seen(target.slug, target.digest, current, target.digest)

    async def _write(self, target: _Target, path: Path) -> None:
        async with self.database.transaction() as session:
            content = (await versions.content_of(session, target.digest)).content
        await asyncio.to_thread(write_atomic, path, content.encode("utf-8"))
        written = stamp(path)
        if written is not None:
            self._seen[target.id] = _Seen(target.slug, target.digest, written, target.digest)

    async def _remove_unless_taken(self, slug: str) -> None:
        async with self.database.transaction() as session:
            taken = await session.scalar(select(models.Script.id).where(models.Script.slug == slug))
        if taken is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path_for(slug))

    async def _import(self, target: _Target, data: bytes, digest: str, current: Stamp) -> None:
        """An edit made outside the service becomes the script's next version."""
        try:
            content = versions.decode_content("file", data)
        except InvalidArgument as error:
            log.warning(
                "mirror.edit_rejected",
                script_id=target.id,
                file=str(self.path_for(target.slug)),
                error=error.violations[0].description,
            )
            # Remembered as dealt with, so it is reported once, not at every scan.
            self._seen[target.id] = _Seen(target.slug, target.digest, current, digest)
            return
        now = datetime.now(UTC)
        async with self.database.transaction() as session:
            row = await session.scalar(
                select(models.Script).where(models.Script.id == target.id).with_for_update()
            )
            if row is None:
                return  # deleted meanwhile; its publish removes the file
            is_template = row.is_template
            if not is_template and await versions.change_content(
                session, row, content, EXTERNAL_EDIT_AUTHOR, now
            ):
                etags.touch(row, now)
        if is_template:
            # Templates are read-only, through the API (TEMPLATE_READ_ONLY) and here alike:
            # the package owns them and its next install would undo the edit anyway.
            log.warning(
                "mirror.template_edit_refused",
                script_id=target.id,
                file=str(self.path_for(target.slug)),
                hint="instantiate the template into a script of your own and edit that",
            )
            await self._write(target, self.path_for(target.slug))
            return
        self._seen[target.id] = _Seen(target.slug, digest, current, digest)
        log.info("mirror.edit_imported", script_id=target.id, digest=digest)


def file_path_of(data_dir: Path, slug: str) -> str:
    """Where the mirror keeps a script (reported as Script.file_path by every replica,
    mirror owner or not: they share the data dir)."""
    return file_path_in(str(mirror_root(data_dir)), slug)


def file_path_in(root: str, slug: str) -> str:
    """``file_path_of`` under a ``mirror_root`` resolved once by the caller: resolving
    the data dir costs system calls, too many to repeat for every row of a page."""
    return f"{root}{os.sep}{slug}{SUFFIX}"
