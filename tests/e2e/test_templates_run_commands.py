"""docker, Nextcloud (occ), systemd, wait-for-tcp-port and skip-unless-mounted templates,
run for real with bash against stand-ins that record what they were asked to do."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.templates_run_support import StandIn, run_template


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    return tmp_path / "bin"


def test_docker_stop_stops_each_container_in_order(tmp_path: Path, bin_dir: Path) -> None:
    docker = StandIn(bin_dir, "docker")
    ran = run_template(
        "docker-stop", {"CONTAINERS": "app  db"}, home=tmp_path, path_first=[bin_dir]
    )
    assert ran.returncode == 0, ran.stderr
    assert docker.calls() == [["stop", "-t", "30", "app"], ["stop", "-t", "30", "db"]]
    assert "2 container(s) stopped" in ran.stdout


def test_docker_stop_aborts_at_the_first_failure(tmp_path: Path, bin_dir: Path) -> None:
    docker = StandIn(bin_dir, "docker", fail_on=("missing",))
    ran = run_template(
        "docker-stop",
        {"CONTAINERS": "missing db", "STOP_TIMEOUT": "5"},
        home=tmp_path,
        path_first=[bin_dir],
    )
    assert ran.returncode != 0
    assert docker.calls() == [["stop", "-t", "5", "missing"]]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({}, "CONTAINERS is required"),
        ({"CONTAINERS": "   "}, "CONTAINERS names no container"),
        (
            {"CONTAINERS": "app", "STOP_TIMEOUT": "5; rm -rf /"},
            "STOP_TIMEOUT must be a whole number",
        ),
    ],
)
def test_docker_stop_refuses_bad_parameters(
    tmp_path: Path, bin_dir: Path, parameters: dict[str, str], message: str
) -> None:
    docker = StandIn(bin_dir, "docker")
    ran = run_template("docker-stop", parameters, home=tmp_path, path_first=[bin_dir])
    assert ran.returncode != 0 and message in ran.stderr
    assert docker.calls() == []


def test_a_custom_docker_command(tmp_path: Path, bin_dir: Path) -> None:
    podman = StandIn(bin_dir, "podman")
    ran = run_template(
        "docker-stop",
        {"CONTAINERS": "app", "DOCKER": "podman --remote"},
        home=tmp_path,
        path_first=[bin_dir],
    )
    assert ran.returncode == 0, ran.stderr
    assert podman.calls() == [["--remote", "stop", "-t", "30", "app"]]


def test_docker_start_starts_in_reverse_order_by_default(tmp_path: Path, bin_dir: Path) -> None:
    docker = StandIn(bin_dir, "docker")
    ran = run_template(
        "docker-start", {"CONTAINERS": "app db"}, home=tmp_path, path_first=[bin_dir]
    )
    assert ran.returncode == 0, ran.stderr
    assert docker.calls() == [["start", "db"], ["start", "app"]]

    given = StandIn(tmp_path / "bin2", "docker")
    ran = run_template(
        "docker-start",
        {"CONTAINERS": "app db", "START_ORDER": "given"},
        home=tmp_path,
        path_first=[tmp_path / "bin2"],
    )
    assert ran.returncode == 0, ran.stderr
    assert given.calls() == [["start", "app"], ["start", "db"]]


def test_docker_start_tries_every_container_and_names_the_failures(
    tmp_path: Path, bin_dir: Path
) -> None:
    docker = StandIn(bin_dir, "docker", fail_on=("db",))
    ran = run_template(
        "docker-start", {"CONTAINERS": "app db cache"}, home=tmp_path, path_first=[bin_dir]
    )
    assert ran.returncode == 1
    assert docker.calls() == [["start", "cache"], ["start", "db"], ["start", "app"]]
    assert "could not start: db" in ran.stderr


@pytest.mark.parametrize(
    ("template", "flag"),
    [
        ("nextcloud-maintenance-on", "--on"),
        ("nextcloud-maintenance-off", "--off"),
    ],
)
def test_nextcloud_maintenance_through_docker_exec(
    tmp_path: Path, bin_dir: Path, template: str, flag: str
) -> None:
    docker = StandIn(bin_dir, "docker")
    ran = run_template(template, {}, home=tmp_path, path_first=[bin_dir])
    assert ran.returncode == 0, ran.stderr
    assert docker.calls() == [
        ["exec", "--user", "www-data", "nextcloud", "php", "occ", "maintenance:mode", flag]
    ]
    custom = StandIn(tmp_path / "bin2", "docker")
    ran = run_template(
        template,
        {"NEXTCLOUD_CONTAINER": "nextcloud-aio-nextcloud", "NEXTCLOUD_USER": "33"},
        home=tmp_path,
        path_first=[tmp_path / "bin2"],
    )
    assert ran.returncode == 0, ran.stderr
    assert custom.calls() == [
        ["exec", "--user", "33", "nextcloud-aio-nextcloud", "php", "occ", "maintenance:mode", flag]
    ]


@pytest.mark.parametrize(
    ("template", "flag"),
    [
        ("nextcloud-maintenance-on", "--on"),
        ("nextcloud-maintenance-off", "--off"),
    ],
)
def test_nextcloud_maintenance_through_an_occ_command(
    tmp_path: Path, bin_dir: Path, template: str, flag: str
) -> None:
    occ = StandIn(bin_dir, "occ")
    docker = StandIn(bin_dir, "docker")
    ran = run_template(
        template, {"OCC_COMMAND": "occ --no-warnings"}, home=tmp_path, path_first=[bin_dir]
    )
    assert ran.returncode == 0, ran.stderr
    assert occ.calls() == [["--no-warnings", "maintenance:mode", flag]]
    assert docker.calls() == []


def test_a_failing_occ_fails_the_hook(tmp_path: Path, bin_dir: Path) -> None:
    StandIn(bin_dir, "occ", fail_on=("--on",))
    ran = run_template(
        "nextcloud-maintenance-on", {"OCC_COMMAND": "occ"}, home=tmp_path, path_first=[bin_dir]
    )
    assert ran.returncode != 0


@pytest.mark.parametrize(
    ("template", "verb"),
    [
        ("systemd-unit-stop", "stop"),
        ("systemd-unit-start", "start"),
    ],
)
def test_systemd_units(tmp_path: Path, bin_dir: Path, template: str, verb: str) -> None:
    systemctl = StandIn(bin_dir, "systemctl")
    ran = run_template(
        template, {"UNITS": "gitea.service backup.timer"}, home=tmp_path, path_first=[bin_dir]
    )
    assert ran.returncode == 0, ran.stderr
    assert systemctl.calls() == [[verb, "--", "gitea.service", "backup.timer"]]
    user = StandIn(tmp_path / "bin2", "systemctl")
    ran = run_template(
        template,
        {"UNITS": "app.service", "SYSTEMCTL": "systemctl --user"},
        home=tmp_path,
        path_first=[tmp_path / "bin2"],
    )
    assert ran.returncode == 0, ran.stderr
    assert user.calls() == [["--user", verb, "--", "app.service"]]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_wait_for_tcp_port_returns_once_the_port_listens(tmp_path: Path) -> None:
    port = _free_port()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def listen_later() -> None:
        time.sleep(1.5)
        server.bind(("127.0.0.1", port))
        server.listen()

    thread = threading.Thread(target=listen_later)
    thread.start()
    try:
        started = time.monotonic()
        ran = run_template(
            "wait-for-tcp-port", {"WAIT_PORT": str(port), "WAIT_INTERVAL": "0.2"}, home=tmp_path
        )
        assert ran.returncode == 0, ran.stderr
        assert "is accepting connections" in ran.stdout
        # It waited for the port, and returned once it listened (not at WAIT_TIMEOUT, 60 s).
        assert 1.0 < time.monotonic() - started < 60
    finally:
        thread.join()
        server.close()


def test_wait_for_tcp_port_gives_up_after_its_timeout(tmp_path: Path) -> None:
    ran = run_template(
        "wait-for-tcp-port",
        {"WAIT_PORT": str(_free_port()), "WAIT_TIMEOUT": "1", "WAIT_INTERVAL": "0.2"},
        home=tmp_path,
    )
    assert ran.returncode == 1 and "still refuses after 1s" in ran.stderr


def test_skip_unless_mounted(tmp_path: Path) -> None:
    mounted = run_template("skip-unless-mounted", {"MOUNT_POINT": "/proc"}, home=tmp_path)
    assert mounted.returncode == 0, mounted.stderr
    unplugged = tmp_path / "usb-disk"
    unplugged.mkdir()
    skipped = run_template("skip-unless-mounted", {"MOUNT_POINT": str(unplugged)}, home=tmp_path)
    assert skipped.returncode == 75 and "skipping this backup" in skipped.stderr


def test_skip_unless_mounted_without_util_linux(tmp_path: Path) -> None:
    # Only stat on PATH: the device comparison decides.
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    os.symlink("/usr/bin/stat", bare / "stat")
    unplugged = tmp_path / "usb-disk"
    unplugged.mkdir()
    assert (
        run_template(
            "skip-unless-mounted", {"MOUNT_POINT": "/proc"}, home=tmp_path, path=str(bare)
        ).returncode
        == 0
    )
    assert (
        run_template(
            "skip-unless-mounted", {"MOUNT_POINT": str(unplugged)}, home=tmp_path, path=str(bare)
        ).returncode
        == 75
    )
    assert (
        run_template(
            "skip-unless-mounted", {"MOUNT_POINT": "/"}, home=tmp_path, path=str(bare)
        ).returncode
        == 0
    )
