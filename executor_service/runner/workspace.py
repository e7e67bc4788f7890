"""The fresh working directory of one step: its cwd, where its ``$HOOKSHELF_OUTPUT`` file
and whatever it writes live.

A workspace is *fresh* when a step gets it: a directory of mode 0700 holding nothing but
an empty output file (mode 0600), used by no other step. It is the step's cwd and, unless
a variable sets one, its ``HOME``.

Making and removing a directory and a file costs several file-system metadata updates,
and on a journalling file system (ext4 with ``discard`` measured 0.3-0.6 ms, more next to
an fsync) that is as long as a trivial hook's whole run. So the chains keep a small
``WorkspacePool``: a workspace its step left as it found it (only the output file, empty
or emptied, modes unchanged, not linked elsewhere) is handed to a later step instead of
being removed; anything else is removed, whatever it holds. A step cannot tell a kept
workspace from a new one except by its name and times.
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
# Clean workspaces kept for later steps; one per concurrently running step is enough.
POOL_SIZE = 32
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

log = structlog.get_logger("hookshelf.executor.runner")


@dataclass(frozen=True)
class Workspace:
    directory: Path
    output_file: Path

    def remove(self) -> None:
        """Delete the directory and everything in it; a hook that made parts unwritable
        (``chmod 000 dir``) does not stop it. Failures are logged, never raised."""
        try:  # the common case, cheaply: the hook left nothing of its own
            self.output_file.unlink(missing_ok=True)
            self.directory.rmdir()
            return
        except OSError:
            pass

        try:
            shutil.rmtree(self.directory)
            return
        except OSError:
            pass
        try:  # the hook removed permissions somewhere (`chmod 000 .`): give them back
            _make_directories_writable(self.directory)
            shutil.rmtree(self.directory)
        except OSError as error:
            log.warning("runner.workspace_not_removed", path=str(self.directory), error=str(error))

    def is_as_new(self) -> bool:
        """True when the step left it as it got it, but for what it wrote to the output
        file, which is emptied here. Call only once every process of the step is gone."""
        euid = os.geteuid()
        try:
            if os.listdir(self.directory) != [OUTPUT_FILE_NAME]:
                return False
            directory = os.lstat(self.directory)
            output = os.lstat(self.output_file)
            if not (
                stat.S_ISDIR(directory.st_mode)
                and stat.S_IMODE(directory.st_mode) == 0o700
                and directory.st_uid == euid
                and stat.S_ISREG(output.st_mode)
                and stat.S_IMODE(output.st_mode) == 0o600
                and output.st_uid == euid
                # A hard link elsewhere would let its holder read later steps' variables.
                and output.st_nlink == 1
            ):
                return False
            if output.st_size:
                os.truncate(self.output_file, 0)
            return True
        except OSError:
            return False


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
    """Make a fresh workspace under ``work_root``: the directory and its empty output file."""
    work_root = work_root.absolute()  # the step's cwd and HOME: absolute paths
    work_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="step-", dir=work_root))
    output_file = directory / OUTPUT_FILE_NAME
    write_file(output_file, b"", 0o600)
    return Workspace(directory=directory, output_file=output_file)


def write_script(workspace: Workspace, script_name: str, content: bytes) -> Path:
    """Write a script (mode 0700) into the workspace, named after it so that ``ps`` and
    error messages say which hook it is. The workspace is then no longer as new."""
    script = workspace.directory / safe_file_name(script_name, "hook")
    if script.name == OUTPUT_FILE_NAME:
        script = workspace.directory / "hook"
    write_file(script, content, 0o700)
    return script


def write_file(path: Path, content: bytes, mode: int) -> None:
    # Written and closed synchronously (no await in between) in the calling thread: an fd
    # still open for writing when the file is exec'd would fail with ETXTBSY.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        view = memoryview(content)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)


def safe_file_name(name: str, fallback: str) -> str:
    """``name`` made a plain file name (at most 64 characters)."""
    cleaned = _UNSAFE.sub("_", name).strip("._")[:64]
    return cleaned or fallback
