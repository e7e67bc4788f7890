"""healthcheck-ping run for real with bash and curl against a local HTTP server that
records the pings, as healthchecks.io would receive them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.templates_run_support import run_template

RUN_ID = "6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"


@dataclass
class PingServer:
    """Records (method, path, body) of every request; answers 503 `failures` times first."""

    url: str
    pings: list[tuple[str, str, str]] = field(default_factory=list)
    failures: int = 0


@pytest.fixture
def server() -> Iterator[PingServer]:
    state = PingServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            state.pings.append((self.command, self.path, body))
            status = 503 if state.failures > 0 else 200
            state.failures = max(0, state.failures - 1)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        do_GET = do_POST = do_HEAD = _answer

        def log_message(self, *args: object) -> None:  # keep the test output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/ping/abc-123"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def ping(server: PingServer, tmp_path: Path, **variables: str) -> tuple[int, str]:
    ran = run_template(
        "healthcheck-ping",
        {"PING_URL": server.url, "PING_RETRIES": "2", **variables},
        home=tmp_path,
    )
    return ran.returncode, ran.stdout + ran.stderr


def paths(server: PingServer) -> list[str]:
    return [path for _, path, _ in server.pings]


def test_a_backup_that_succeeds_pings_start_then_success(
    server: PingServer, tmp_path: Path
) -> None:
    assert ping(server, tmp_path, HOOKSHELF_HOOK_TYPE="pre-backup")[0] == 0
    assert (
        ping(
            server,
            tmp_path,
            HOOKSHELF_HOOK_TYPE="post-backup",
            HOOKSHELF_BACKUP_STATUS="success",
            HOOKSHELF_REPOSITORY_ID="repo-1",
        )[0]
        == 0
    )
    assert paths(server) == ["/ping/abc-123/start", "/ping/abc-123"]
    assert {method for method, _, _ in server.pings} == {"POST"}
    assert "backup success (repository repo-1)" in server.pings[1][2]


@pytest.mark.parametrize("status", ["failure", "aborted", "cancelled", "skipped", "FAILURE"])
def test_a_backup_that_did_not_succeed_pings_fail(
    server: PingServer, tmp_path: Path, status: str
) -> None:
    code, _ = ping(
        server, tmp_path, HOOKSHELF_HOOK_TYPE="post-backup", HOOKSHELF_BACKUP_STATUS=status
    )
    assert code == 0
    assert paths(server) == ["/ping/abc-123/fail"]


@pytest.mark.parametrize("status", ["warning", "SUCCESS", "BACKUP_OUTCOME_SUCCESS"])
def test_a_warning_counts_as_success(server: PingServer, tmp_path: Path, status: str) -> None:
    assert (
        ping(server, tmp_path, HOOKSHELF_HOOK_TYPE="post-backup", HOOKSHELF_BACKUP_STATUS=status)[0]
        == 0
    )
    assert paths(server) == ["/ping/abc-123"]


@pytest.mark.parametrize("hook_type", ["PRE_BACKUP", "HOOK_TYPE_PRE_BACKUP", ""])
def test_other_spellings_of_a_pre_hook_ping_start(
    server: PingServer, tmp_path: Path, hook_type: str
) -> None:
    assert ping(server, tmp_path, HOOKSHELF_HOOK_TYPE=hook_type)[0] == 0
    assert paths(server) == ["/ping/abc-123/start"]


@pytest.mark.parametrize(
    ("mode", "path"),
    [
        ("start", "/ping/abc-123/start"),
        ("success", "/ping/abc-123"),
        ("fail", "/ping/abc-123/fail"),
    ],
)
def test_a_forced_mode(server: PingServer, tmp_path: Path, mode: str, path: str) -> None:
    assert ping(server, tmp_path, PING_MODE=mode, HOOKSHELF_BACKUP_STATUS="failure")[0] == 0
    assert paths(server) == [path]


def test_the_run_id_pairs_start_and_end_and_a_query_string_is_kept(
    server: PingServer, tmp_path: Path
) -> None:
    server.url += "?create=1"
    assert ping(server, tmp_path, HOOKSHELF_HOOK_TYPE="pre-backup", HOOKSHELF_RUN_ID=RUN_ID)[0] == 0
    assert (
        ping(server, tmp_path, HOOKSHELF_HOOK_TYPE="pre-backup", HOOKSHELF_RUN_ID="not-a-uuid")[0]
        == 0
    )
    assert paths(server) == [
        f"/ping/abc-123/start?create=1&rid={RUN_ID}",
        "/ping/abc-123/start?create=1",
    ]


def test_a_transient_error_is_retried(server: PingServer, tmp_path: Path) -> None:
    server.failures = 1
    code, output = ping(
        server, tmp_path, HOOKSHELF_HOOK_TYPE="post-backup", HOOKSHELF_BACKUP_STATUS="success"
    )
    assert code == 0 and "success delivered" in output
    assert paths(server) == ["/ping/abc-123", "/ping/abc-123"]


def test_an_unreachable_service_warns_unless_strict(server: PingServer, tmp_path: Path) -> None:
    server.url = "http://127.0.0.1:9/ping/abc-123"  # discard port: nothing listens
    code, output = ping(server, tmp_path, PING_RETRIES="0", PING_TIMEOUT="3")
    assert code == 0 and "warning: could not deliver the start ping" in output
    code, output = ping(server, tmp_path, PING_RETRIES="0", PING_TIMEOUT="3", PING_STRICT="true")
    assert code == 1 and "could not deliver the start ping" in output


def test_a_bad_mode_is_refused(server: PingServer, tmp_path: Path) -> None:
    code, output = ping(server, tmp_path, PING_MODE="sometimes")
    assert code == 2 and "PING_MODE must be" in output
    assert server.pings == []
