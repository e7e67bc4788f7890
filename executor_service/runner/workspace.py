"""The fresh working directory of one step, and the file its script is exec'd from.

A workspace is *fresh* when a step gets it: a directory of mode 0700 holding nothing but
an empty output file (mode 0600), used by no other step. It is the step's cwd and, unless
a variable sets one, its ``HOME``. Next to it (``<directory>.hook/``, so the cwd holds
nothing the hook did not put there) is its script slot: the step's script, written from
verified content just before the step (``install_script``) and named after the hook, so
``ps`` and the shell's error messages say which hook it is.

Making a file or directory costs a new inode, and on a journalling file system that is
slow: on this project's ext4 (mounted with ``discard``) 20-70 µs of CPU on a good minute
and 200-600 µs on a bad one, against 7-17 µs for a rename or an overwrite. A trivial
hook's whole run is ~0.6 ms. So the chains keep a small ``WorkspacePool``: a workspace its
step left as it found it (only the output file, empty or emptied, and its script file,
modes and owners unchanged, nothing linked elsewhere) is handed to a later step instead of
being removed, and that step's script overwrites the file in its slot; anything else is
removed, whatever it holds. A step cannot tell a kept workspace from a new one except by
its name and times. A hook that edits its own script (``$0``) edits only the copy it ran:
the next step's script is written over it from verified bytes.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import structlog

OUTPUT_FILE_NAME = "hookshelf-output"
SCRIPT_SLOT_SUFFIX = ".hook"  # <workspace directory>.hook/ holds the step's script
# Clean workspaces kept for later steps; one per concurrently running step is enough.
POOL_SIZE = 32
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

log = structlog.get_logger("hookshelf.executor.runner")


@dataclass(eq=False)
class Workspace:
    directory: Path
    output_file: Path
    script_slot: Path  # the directory of the step's script, outside its cwd
    script: Path | None = None  # the last script installed, if any

    def install_script(self, script_name: str, content: bytes) -> Path:
        """Write ``content`` as the workspace's script (mode 0700), named after the hook,
        and return its path to exec. Overwrites the slot's file in place when it can (no
        new inode); the slot holds only this one file afterwards."""
        target = self.script_slot / safe_file_name(script_name, "hook")
        try:
            if self.script is None:  # a new workspace: its slot is empty
                write_file(target, content, 0o700)
            else:
                if self.script != target:
                    os.rename(self.script, target)  # the same inode under the hook's name
                _overwrite(target, content)
            self.script = target
        except OSError:
            # Anything unexpected (a file a stray process still runs: ETXTBSY, a slot a
            # hook tampered with): start the slot afresh.
            self.script = None
            _remove_tree(self.script_slot)
            os.mkdir(self.script_slot, 0o700)
            write_file(target, content, 0o700)
            self.script = target
        return target

    def remove(self) -> None:
        """Delete the directory, its script slot and everything in them; a hook that made
        parts unwritable (``chmod 000 dir``) does not stop it. Failures are logged, never
        raised."""
        _remove_tree(self.script_slot)
        try:  # the common case, cheaply: the hook left nothing of its own
            self.output_file.unlink(missing_ok=True)
            self.directory.rmdir()
            return
        except OSError:
            pass
        _remove_tree(self.directory)

    def is_as_new(self) -> bool:
        """True when the step left it as it got it, but for what it wrote to the output
        file, which is emptied here, and its script file. Call only once every process of
        the step is gone."""
        euid = os.geteuid()
        try:
            if os.listdir(self.directory) != [OUTPUT_FILE_NAME]:
                return False
            expected_scripts = [] if self.script is None else [self.script.name]
            if os.listdir(self.script_slot) != expected_scripts:
                return False
            directory = os.lstat(self.directory)
            slot = os.lstat(self.script_slot)
            output = os.lstat(self.output_file)
            if not (
                _is_private_directory(directory, euid)
                and _is_private_directory(slot, euid)
                and _is_own_unlinked_file(output, euid)
                and stat.S_IMODE(output.st_mode) == 0o600
            ):
                return False
            # Its mode may differ (a hook may chmod its own script): it is set again when
            # the next script is written over it.
            if self.script is not None and not _is_own_unlinked_file(os.lstat(self.script), euid):
                return False
            if output.st_size:
                os.truncate(self.output_file, 0)
            return True
        except OSError:
            return False


def _is_private_directory(info: os.stat_result, euid: int) -> bool:
    return (
        stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == euid
    )


def _is_own_unlinked_file(info: os.stat_result, euid: int) -> bool:
    # A hard link elsewhere would let its holder read (or write) what later steps use.
    return stat.S_ISREG(info.st_mode) and info.st_uid == euid and info.st_nlink == 1


def _overwrite(path: Path, content: bytes) -> None:
    """Replace the content of an existing file of ours in place (O_NOFOLLOW: never through
    a link). Raises OSError when it is not such a file or cannot be written.

    Written over from its start and only then cut to length, not emptied first: emptying
    frees its block and writing allocates one again, which cost 40 µs alone and several
    times that next to the journal's fsyncs (measured), against ~7 µs this way."""
    # O_NONBLOCK: a FIFO in its place fails (ENXIO) instead of blocking the loop.
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not _is_own_unlinked_file(info, os.geteuid()):
            raise OSError(f"{path} is not a private regular file")
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
        _write_all(fd, content)
        if info.st_size > len(content):
            os.ftruncate(fd, len(content))
    finally:
        os.close(fd)


def _remove_tree(root: Path) -> None:
    """Delete ``root`` and everything in it, whatever permissions a hook left; logged,
    never raised."""
    try:
        shutil.rmtree(root)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    try:  # the hook removed permissions somewhere (`chmod 000 .`): give them back
        _make_directories_writable(root)
        shutil.rmtree(root)
    except OSError as error:
        log.warning("runner.workspace_not_removed", path=str(root), error=str(error))


class WorkspacePool:
    """Workspaces under ``work_root``: fresh ones made on demand, clean ones kept.

    Used from the event loop's thread only."""

    def __init__(self, work_root: Path, size: int = POOL_SIZE) -> None:
        self.work_root = work_root.absolute()
        self._size = size
        self._idle: list[Workspace] = []

    def take(self) -> Workspace:
        """A fresh workspace, owned by the caller until ``give_back``."""
        if self._idle:
            return self._idle.pop()
        return create_workspace(self.work_root)

    def fill(self, count: int) -> None:
        """Make workspaces ahead (at start-up), so the first steps make none."""
        while len(self._idle) < min(count, self._size):
            self._idle.append(create_workspace(self.work_root))

    def give_back(self, workspace: Workspace) -> None:
        """The step is over and none of its processes is left: keep the workspace for a
        later step if it is as new, otherwise remove it."""
        if len(self._idle) < self._size and workspace.is_as_new():
            self._idle.append(workspace)
        else:
            workspace.remove()

    def clear(self) -> None:
        """Remove the kept workspaces."""
        while self._idle:
            self._idle.pop().remove()


def _make_directories_writable(root: Path) -> None:
    """u+rwx on every directory of the tree, each before it is entered. Symlinks are left
    alone (chmod would follow them); the step's processes are all gone by now."""
    os.chmod(root, stat.S_IRWXU)
    for directory, subdirectories, _ in os.walk(root):
        for name in subdirectories:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                os.chmod(path, stat.S_IRWXU)


def create_workspace(work_root: Path) -> Workspace:
    """Make a fresh workspace under ``work_root``: the directory, its empty output file
    and its (empty) script slot."""
    work_root = work_root.absolute()  # the step's cwd and HOME: absolute paths
    work_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="step-", dir=work_root))
    output_file = directory / OUTPUT_FILE_NAME
    script_slot = directory.with_name(directory.name + SCRIPT_SLOT_SUFFIX)
    try:
        write_file(output_file, b"", 0o600)
        os.mkdir(script_slot, 0o700)
    except BaseException:
        _remove_tree(directory)
        raise
    return Workspace(directory=directory, output_file=output_file, script_slot=script_slot)


def write_file(path: Path, content: bytes, mode: int) -> None:
    # Written and closed synchronously (no await in between) in the calling thread: an fd
    # still open for writing when the file is exec'd would fail with ETXTBSY.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        _write_all(fd, content)
    finally:
        os.close(fd)


def _write_all(fd: int, content: bytes) -> None:
    view = memoryview(content)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def safe_file_name(name: str, fallback: str) -> str:
    """``name`` made a plain file name (at most 64 characters)."""
    cleaned = _UNSAFE.sub("_", name).strip("._")[:64]
    return cleaned or fallback
