"""Headers a client sends never get INTERNAL: odd names, non-ASCII and control characters
in values, oversized values, binary ``-bin`` headers, a bad ``x-request-id`` or
``authorization``, on both services.

grpcurl sends what Python's client refuses to (UTF-8 in a text header), so the calls go
through the real grpcurl. A request id the server cannot echo is replaced by one of its
own, which the trailers then carry.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import string
from pathlib import Path

import pytest

from tests.e2e.test_executor_process import REPO_ROOT, ExecutorProcess

GRPCURL = REPO_ROOT / ".venv" / "bin" / "grpcurl"
LIBRARY_CALL = ("hookshelf.library.v1.ScriptLibraryService/GetScript", '{"name": "nope"}')
EXECUTOR_CALL = ("hookshelf.executor.v1.HookExecutorService/GetBackupRun", '{"run_id": "nope"}')
# What a refused header may legitimately answer; the call itself answers NotFound.
FINE = {"NotFound", "Unauthenticated", "InvalidArgument", "ResourceExhausted"}

HANDPICKED: list[tuple[str, str]] = [
    ("x-request-id", "héllo"),
    ("x-request-id", "a b"),
    ("x-request-id", "tab\there"),
    ("x-request-id", "x" * 4000),
    ("x-request-id", "💾"),
    ("authorization", "Bearer héllo"),
    ("authorization", "Bearer \u0001"),
    ("authorization", "Basic " + base64.b64encode(b"\xff\xfe").decode()),
    ("authorization", "x" * 6000),
    ("x-request-id-bin", base64.b64encode(b"\x00\xff\x10").decode()),
    ("authorization-bin", base64.b64encode(b"\xff" * 64).decode()),
    ("weird-bin", base64.b64encode(bytes(range(256))).decode()),
    ("grpc-timeout", "1n"),
    ("content-type", "application/json"),
    ("te", "gzip"),
    ("x-a", "é" * 2000),
]


def _fuzzed(seed: int, count: int) -> list[tuple[str, str]]:
    """Deterministic random headers: names from the allowed alphabet (some with -bin),
    values from printable ASCII, Latin-1 and a few astral characters."""
    rng = random.Random(seed)
    alphabet = string.ascii_lowercase + string.digits + "-_."
    values = string.printable.replace("\n", "").replace("\r", "") + "éßü€😀\u00a0"
    headers = []
    for _ in range(count):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24))).strip("-")
        name = name or "x"
        if rng.random() < 0.25:
            raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
            headers.append((f"{name}-bin", base64.b64encode(raw).decode()))
        else:
            value = "".join(rng.choice(values) for _ in range(rng.randint(0, 300)))
            headers.append((rng.choice([name, "x-request-id", "authorization"]), value))
    return headers


async def _grpcurl(target: list[str], header: tuple[str, str], call: tuple[str, str]):
    method, data = call
    process = await asyncio.create_subprocess_exec(
        str(GRPCURL),
        "-plaintext",
        "-v",
        "-max-time",
        "30",
        "-H",
        f"{header[0]}: {header[1]}",
        "-d",
        data,
        *target,
        method,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    return out.decode(errors="replace"), err.decode(errors="replace")


def _code(err: str) -> str | None:
    found = re.search(r"Code: (\w+)", err)
    return found.group(1) if found else None


async def _every_header_answers_cleanly(target: list[str], call: tuple[str, str]) -> None:
    answered = 0
    for header in [*HANDPICKED, *_fuzzed(seed=20261202, count=60)]:
        out, err = await _grpcurl(target, header, call)
        code = _code(err)
        if code is None:
            # grpcurl (grpc-go) refused to send the header itself: nothing reached us.
            assert "invalid" in err.lower() or "malformed" in err.lower(), (header, err)
            continue
        answered += 1
        assert code in FINE, (header, code, err)
        if header[0] == "x-request-id" and code == "NotFound":
            trailers = (out + err).split("Response trailers received:")[-1]
            echoed = re.search(r"^x-request-id: (.*)$", trailers, re.MULTILINE)
            assert echoed and re.fullmatch(r"[!-~]{1,128}", echoed.group(1)), (header, out)
    # Most cases must have reached the server, or the test proves nothing.
    assert answered >= 50


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"


async def test_no_header_makes_the_library_answer_internal(library) -> None:
    await _every_header_answers_cleanly([library.address], LIBRARY_CALL)


async def test_no_header_makes_the_executor_answer_internal(
    library, tmp_path: Path, short_socket_dir: Path
) -> None:
    executor = ExecutorProcess(
        library_address=library.address,
        state_dir=tmp_path / "state",
        socket_dir=short_socket_dir,
    )
    await executor.start()
    try:
        await _every_header_answers_cleanly(["-unix", str(executor.socket)], EXECUTOR_CALL)
    finally:
        await executor.stop_if_running()
