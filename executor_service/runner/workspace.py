"""The fresh working directory of one step: where its script, its ``$HOOKSHELF_OUTPUT`` file
and whatever it writes live, and which is removed, whatever it holds, when the step ends.

The directory (mode 0700) is the step's cwd and, unless a variable sets one, its ``HOME``.
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
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

log = structlog.get_logger("hookshelf.executor.runner")


@dataclass(frozen=True)
class Workspace:
    directory: Path
    script: Path
    output_file: Path

    def remove(self) -> None:
        """Delete the directory and everything in it; a hook that made parts unwritable
        (``chmod 000 dir``) does not stop it. Failures are logged, never raised."""
        try:  # the common case, cheaply: the hook left nothing of its own
            self.script.unlink(missing_ok=True)
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


def _make_directories_writable(root: Path) -> None:
    """u+rwx on every directory of the tree, each before it is entered. Symlinks are left
    alone (chmod would follow them); the step's processes are all gone by now."""
    os.chmod(root, stat.S_IRWXU)
    for directory, subdirectories, _ in os.walk(root):
        for name in subdirectories:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                os.chmod(path, stat.S_IRWXU)


def create_workspace(
    work_root: Path, execution_id: str, script_name: str, content: bytes
) -> Workspace:
    """Make the directory under ``work_root``, write the script (mode 0700) and an empty
    output file into it."""
    work_root = work_root.absolute()  # the script is exec'd by path from inside the directory
    work_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory = Path(
        tempfile.mkdtemp(prefix=f"step-{_safe(execution_id, 'x')[:36]}-", dir=work_root)
    )
    # Named after the script so `ps` and error messages say which hook it is.
    script = directory / (_safe(script_name, "hook")[:64])
    if script.name == OUTPUT_FILE_NAME:
        script = directory / "hook"
    output_file = directory / OUTPUT_FILE_NAME
    _write(script, content, 0o700)
    _write(output_file, b"", 0o600)
    return Workspace(directory=directory, script=script, output_file=output_file)


def _write(path: Path, content: bytes, mode: int) -> None:
    # Written and closed synchronously (no await in between) in the event loop thread: an fd
    # still open for writing when the file is exec'd would fail with ETXTBSY.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        view = memoryview(content)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)


def _safe(name: str, fallback: str) -> str:
    cleaned = _UNSAFE.sub("_", name).strip("._")
    return cleaned or fallback
