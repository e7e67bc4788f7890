"""TLS as an operator sets it up: `python -m library_service` with HOOKSHELF_TLS_*
variables, the `hookshelf` CLI with --tls-ca/--tls-cert/--tls-key, and
`python -m executor_service` reaching that library over mutual TLS to run a backup.
Settings that cannot work stop a service with one line, before it serves.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cli_support import (
    HOOKSHELF,
    ROOT,
    Service,
    clean_env,
    free_port,
    one_error_line,
    start_service,
)
from tests.tls_certs import Authority, Pki, make_pki


def refusal(env: dict[str, str], module: str = "library_service") -> str:
    """A service that must not start: exit 1 and one line on stderr saying why."""
    result = subprocess.run(
        [sys.executable, "-m", module],
        check=False,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines, result
    return lines[-1]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"HOOKSHELF_TLS_CERT_FILE": "{pki}/server.crt"},
            "HOOKSHELF_TLS_CERT_FILE is set but HOOKSHELF_TLS_KEY_FILE is not",
        ),
        (
            {"HOOKSHELF_TLS_KEY_FILE": "{pki}/server.key"},
            "HOOKSHELF_TLS_KEY_FILE is set but HOOKSHELF_TLS_CERT_FILE is not",
        ),
        (
            {"HOOKSHELF_TLS_CLIENT_CA_FILE": "{pki}/ca.crt"},
            "HOOKSHELF_TLS_CLIENT_CA_FILE is set but HOOKSHELF_TLS_CERT_FILE is not",
        ),
        (
            {
                "HOOKSHELF_TLS_CERT_FILE": "{pki}/server.crt",
                "HOOKSHELF_TLS_KEY_FILE": "{pki}/missing.key",
            },
            "cannot read HOOKSHELF_TLS_KEY_FILE {pki}/missing.key: No such file or directory",
        ),
        (
            {
                "HOOKSHELF_TLS_CERT_FILE": "{pki}/server.crt",
                "HOOKSHELF_TLS_KEY_FILE": "{pki}/client.key",
            },
            "HOOKSHELF_TLS_KEY_FILE is not the key of HOOKSHELF_TLS_CERT_FILE",
        ),
    ],
    ids=[
        "cert-without-key",
        "key-without-cert",
        "client-ca-without-cert",
        "unreadable",
        "not-its-key",
    ],
)
def test_the_library_refuses_to_start_with_tls_settings_that_cannot_work(
    tmp_path: Path, variables: dict[str, str], expected: str
) -> None:
    pki = tmp_path / "pki"
    make_pki(pki)
    env = clean_env(
        HOOKSHELF_DATA_DIR=str(tmp_path / "data"),
        HOOKSHELF_LIBRARY_LISTEN=f"127.0.0.1:{free_port()}",
        **{name: value.format(pki=pki) for name, value in variables.items()},
    )
    line = refusal(env)
    assert line.startswith(f"library: cannot start: {expected.format(pki=pki)}"), line
    assert not (tmp_path / "data").exists()  # refused before touching anything


def test_the_executor_refuses_a_client_certificate_without_its_key(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    env = clean_env(
        HOOKSHELF_EXECUTOR_LISTEN=f"unix:{tmp_path}/ex.sock",
        HOOKSHELF_EXECUTOR_STATE_DIR=str(tmp_path / "state"),
        HOOKSHELF_TLS_CA_FILE=str(pki.ca_file),
        HOOKSHELF_TLS_CLIENT_CERT_FILE=str(pki.client_cert),
    )
    line = refusal(env, "executor_service")
    assert line == (
        "executor: cannot start: HOOKSHELF_TLS_CLIENT_CERT_FILE is set but "
        "HOOKSHELF_TLS_CLIENT_KEY_FILE is not: a certificate needs its key"
    )


class TlsStack:
    def __init__(self, data: Path, pki: Pki, library_target: str, executor_target: str) -> None:
        self.data, self.pki = data, pki
        self.library_target, self.executor_target = library_target, executor_target
        self.services: list[Service] = []

    def cli(self, *args: str, tls: bool = True) -> subprocess.CompletedProcess[str]:
        flags = [
            "--library",
            self.library_target,
            "--executor",
            self.executor_target,
        ]
        if tls:
            flags += [
                "--tls-ca",
                str(self.pki.ca_file),
                "--tls-cert",
                str(self.pki.client_cert),
                "--tls-key",
                str(self.pki.client_key),
            ]
        return subprocess.run(
            [str(HOOKSHELF), *flags, *args],
            check=False,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.data,
        )

    def logs(self) -> str:
        return "\n".join(f"--- {s.name}\n{s.tail()}" for s in self.services)


@pytest.fixture(scope="module")
def stack() -> Iterator[TlsStack]:
    """A library serving mutual TLS (health plaintext on its own port, for probes) and an
    executor on a unix socket that reaches the library with its client certificate."""
    data = Path(tempfile.mkdtemp(prefix="hs-tls-", dir="/tmp"))
    pki = make_pki(data / "pki")
    library_target = f"127.0.0.1:{free_port()}"
    health_target = f"127.0.0.1:{free_port()}"
    executor_target = f"unix:{data}/executor.sock"
    library_env = clean_env(
        HOOKSHELF_DATA_DIR=str(data / "library"),
        HOOKSHELF_LIBRARY_LISTEN=library_target,
        HOOKSHELF_LIBRARY_HEALTH_LISTEN=health_target,
        HOOKSHELF_TLS_CERT_FILE=str(pki.server_cert),
        HOOKSHELF_TLS_KEY_FILE=str(pki.server_key),
        HOOKSHELF_TLS_CLIENT_CA_FILE=str(pki.ca_file),
        HOOKSHELF_INSTALL_TEMPLATES="false",
        HOOKSHELF_SHUTDOWN_GRACE_SECONDS="5",
    )
    executor_env = clean_env(
        HOOKSHELF_EXECUTOR_LISTEN=executor_target,
        HOOKSHELF_EXECUTOR_STATE_DIR=str(data / "executor"),
        HOOKSHELF_LIBRARY_TARGET=library_target,
        HOOKSHELF_TLS_CA_FILE=str(pki.ca_file),
        HOOKSHELF_TLS_CLIENT_CERT_FILE=str(pki.client_cert),
        HOOKSHELF_TLS_CLIENT_KEY_FILE=str(pki.client_key),
        HOOKSHELF_SHUTDOWN_GRACE_SECONDS="5",
    )
    running = TlsStack(data, pki, library_target, executor_target)
    try:
        running.services.append(
            start_service("library_service", library_env, data / "library.log", health_target)
        )
        running.services.append(
            start_service("executor_service", executor_env, data / "executor.log", executor_target)
        )
        yield running
    finally:
        for service in reversed(running.services):
            service.stop()
        shutil.rmtree(data, ignore_errors=True)


def test_the_cli_speaks_mutual_tls_to_the_library(stack: TlsStack) -> None:
    script = stack.data / "hello.sh"
    script.write_text("#!/bin/sh\necho hello\n")
    created = stack.cli("scripts", "create", "hello", "--file", str(script))
    assert created.returncode == 0, created.stderr
    listed = stack.cli("scripts", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert '"name": "hello"' in listed.stdout


def test_the_cli_without_a_client_certificate_is_refused(stack: TlsStack) -> None:
    plaintext = stack.cli("scripts", "list", tls=False)
    assert plaintext.returncode == 69
    assert "library" in one_error_line(plaintext)

    only_ca = subprocess.run(
        [str(HOOKSHELF), "--library", stack.library_target, "--tls-ca", str(stack.pki.ca_file)]
        + ["scripts", "list"],
        check=False,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert only_ca.returncode == 69
    one_error_line(only_ca)


def test_a_client_certificate_from_another_ca_is_refused(stack: TlsStack, tmp_path: Path) -> None:
    stranger = Authority("Another CA").issue("intruder", server=False)
    cert, key = stranger.write(tmp_path, "intruder")
    result = subprocess.run(
        [str(HOOKSHELF), "--library", stack.library_target, "--tls-ca", str(stack.pki.ca_file)]
        + ["--tls-cert", str(cert), "--tls-key", str(key), "scripts", "list"],
        check=False,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 69
    one_error_line(result)


def test_the_cli_refuses_a_certificate_without_its_key_as_a_usage_error(stack: TlsStack) -> None:
    result = subprocess.run(
        [str(HOOKSHELF), "--tls-cert", str(stack.pki.client_cert), "scripts", "list"],
        check=False,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert one_error_line(result) == (
        "hookshelf: HOOKSHELF_TLS_CLIENT_CERT_FILE is set but HOOKSHELF_TLS_CLIENT_KEY_FILE "
        "is not: a certificate needs its key"
    )


def test_a_backup_through_an_executor_that_reaches_the_library_over_mutual_tls(
    stack: TlsStack,
) -> None:
    marker = stack.data / "marker"
    script = stack.data / "mark.sh"
    script.write_text(f'#!/bin/sh\necho "pre ran" >> "{marker}"\n')
    assert stack.cli("scripts", "create", "mark", "--file", str(script)).returncode == 0
    assigned = stack.cli("assign", "mark", "-r", "tls-repo", "--hook", "pre")
    assert assigned.returncode == 0, assigned.stderr

    backup = stack.cli("backup", "-r", "tls-repo", "--", "true")
    assert backup.returncode == 0, f"{backup.stderr}\n{stack.logs()}"
    assert marker.read_text() == "pre ran\n"  # the plan and the content came over mTLS
    # ... and the executor recorded the execution there, over mTLS too.
    history = stack.cli("history", "-r", "tls-repo", "--json")
    assert history.returncode == 0, history.stderr
    assert '"script_name": "mark"' in history.stdout, history.stdout
