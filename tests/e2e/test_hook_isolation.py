"""A hook cannot read what its executor holds, with the executor running as a non-root
user (as it does in a pod): not the executor's environment (tokens, the journal key) nor
its memory, because the executor is not dumpable; not the secret values of owed post
plans in the journal, because they are sealed with HOOKSHELF_EXECUTOR_JOURNAL_KEY. The
hook can read the journal file itself: the sealing is what protects the values.

The executor runs as ``nobody``. The repository, its .venv and the interpreter may sit
under directories that user cannot enter (a checkout under /root), so they are
bind-mounted read-only into a directory it can (the tests run as root).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from shared.stubs import executor_pb2, library_pb2
from tests.e2e.test_executor_process import REPO_ROOT, ExecutorProcess
from tests.service.assignments_support import DEADLINE, make_script

USER = "nobody"
SECRET_TYPE = library_pb2.PARAMETER_TYPE_SECRET

# The pre hook tries each way in; every line it prints is a finding.
SNOOP = r"""#!/bin/sh
executor=$PPID
if cat /proc/$executor/environ >/dev/null 2>&1; then echo "environ=readable"; else echo "environ=denied"; fi
if head -c 16 /proc/$executor/mem >/dev/null 2>&1; then echo "mem=readable"; else echo "mem=denied"; fi
if ls /proc/$executor/fd >/dev/null 2>&1; then echo "fd=readable"; else echo "fd=denied"; fi
if cat /proc/self/environ >/dev/null 2>&1; then echo "own-environ=readable"; fi
if [ -r "$STATE_DIR/journal.db" ]; then echo "journal=readable"; fi
wanted=$(printf '%s' "$SECRET_REVERSED" | rev)
found=0
for file in "$STATE_DIR"/journal.db*; do
    if grep -a -q -F -- "$wanted" "$file"; then found=1; fi
done
echo "secret-in-journal=$found"
"""
# The post hook proves it got the real value (printed as a hash: the value itself would be
# redacted from the output).
POST = '#!/bin/sh\nprintf "%s" "$API_TOKEN" | sha256sum\n'


@dataclass
class Staged:
    python: str
    python_lib: Path
    repository: Path
    site_packages: Path
    socket_dir: Path
    state_dir: Path


def _bind(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)


@pytest.fixture
def staged() -> Iterator[Staged]:
    """The repository and the interpreter where ``nobody`` can reach them, and a state
    dir and socket dir it owns."""
    user = pwd.getpwnam(USER)
    root = Path(tempfile.mkdtemp(prefix="hookshelf-iso-"))
    os.chmod(root, 0o755)
    mounts = [root / "repo", root / "python"]
    try:
        _bind(REPO_ROOT, mounts[0])
        _bind(Path(sys.base_prefix), mounts[1])
        interpreter = Path(sys.executable).resolve()
        relative = interpreter.relative_to(Path(sys.base_prefix).resolve())
        venv_site = Path(next(p for p in sys.path if p.endswith("site-packages")))
        state_dir, socket_dir = root / "state", root / "sock"
        for directory in (state_dir, socket_dir):
            directory.mkdir()
            os.chown(directory, user.pw_uid, user.pw_gid)
        yield Staged(
            python=str(mounts[1] / relative),
            python_lib=mounts[1] / "lib",
            repository=mounts[0],
            site_packages=mounts[0] / venv_site.relative_to(REPO_ROOT),
            socket_dir=socket_dir,
            state_dir=state_dir,
        )
    finally:
        for mount in mounts:
            subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(root, ignore_errors=True)


def _output(events: list[executor_pb2.HookEvent]) -> str:
    return b"".join(e.output.data for e in events if e.WhichOneof("event") == "output").decode()


async def _events(stream) -> list[executor_pb2.HookEvent]:
    return [response.event async for response in stream]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"


async def test_a_hook_gets_nothing_of_its_executor_environment_memory_or_sealed_journal(
    library, staged: Staged
) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    repository = f"repo-{uuid.uuid4().hex[:8]}"
    snoop = await make_script(library, "snoop", content=SNOOP)
    post = await make_script(
        library,
        "uses-secret",
        content=POST,
        parameters=[library_pb2.Parameter(name="API_TOKEN", type=SECRET_TYPE)],
    )
    for script, hook_type, values in (
        (snoop, library_pb2.HOOK_TYPE_PRE_BACKUP, {}),
        (post, library_pb2.HOOK_TYPE_POST_BACKUP, {"API_TOKEN": secret}),
    ):
        await library.stub.AssignScript(
            library_pb2.AssignScriptRequest(
                assignment=library_pb2.Assignment(
                    repository_id=repository,
                    script_id=script.id,
                    hook_type=hook_type,
                    parameter_values=values,
                )
            ),
            timeout=DEADLINE,
        )

    executor = ExecutorProcess(
        library_address=library.address,
        state_dir=staged.state_dir,
        socket_dir=staged.socket_dir,
        log_path=staged.state_dir.parent / "executor.log",
        python=staged.python,
        cwd=staged.repository,
        user=USER,
    )
    executor.environment.update(
        PYTHONPATH=f"{staged.repository}:{staged.site_packages}",
        # An interpreter built with an absolute rpath (pyenv) finds its libpython here.
        LD_LIBRARY_PATH=str(staged.python_lib),
        HOOKSHELF_EXECUTOR_JOURNAL_KEY=Fernet.generate_key().decode(),
    )
    (staged.state_dir.parent / "executor.log").touch()
    await executor.start(timeout=60)
    try:
        assert executor.process is not None
        owner = Path(f"/proc/{executor.process.pid}/status").read_text()
        assert f"Uid:\t{pwd.getpwnam(USER).pw_uid}" in owner  # really not root

        assert executor.stub is not None
        begun = await _events(
            executor.stub.BeginBackup(
                executor_pb2.BeginBackupRequest(
                    repository_id=repository,
                    variables={
                        "STATE_DIR": str(staged.state_dir),
                        # Reversed, so the run's own variables in the journal do not
                        # hold the value the hook looks for.
                        "SECRET_REVERSED": secret[::-1],
                    },
                ),
                timeout=60,
            )
        )
        findings = _output(begun)
        # The hook could look (its own environment, the journal file)...
        assert "own-environ=readable" in findings, findings
        assert "journal=readable" in findings, findings
        # ...and found nothing.
        assert "environ=denied" in findings, findings
        assert "mem=denied" in findings, findings
        assert "fd=denied" in findings, findings
        assert "secret-in-journal=0" in findings, findings
        assert begun[-1].summary.verdict == executor_pb2.VERDICT_PROCEED

        ended = await _events(
            executor.stub.EndBackup(
                executor_pb2.EndBackupRequest(
                    run_id=begun[0].run_id, outcome=library_pb2.BACKUP_OUTCOME_SUCCESS
                ),
                timeout=60,
            )
        )
        # The post hook got the real value back out of the sealed plan.
        assert hashlib.sha256(secret.encode()).hexdigest() in _output(ended)
        assert ended[-1].summary.succeeded_count == 1
    finally:
        await executor.stop_if_running()
