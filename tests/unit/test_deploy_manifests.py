"""deploy/: both overlays build with `kubectl kustomize`, and what they build is wired the
way the services read it: every HOOKSHELF_* name is a real setting, probes hit the health
ports the settings open, the executor is a native sidecar, production has exactly one
file-mirror owner and requires its Secret.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
OVERLAYS = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if p.is_dir())
KUBECTL = shutil.which("kubectl")


def render(overlay: str) -> list[dict[str, Any]]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed (it ships with the project's machine image)")
    built = subprocess.run(
        [KUBECTL, "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def settings_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    (config,) = [
        d for d in by_kind(docs, "ConfigMap") if "hookshelf-settings" in d["metadata"]["name"]
    ]
    return config["data"]


def port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def hookshelf_containers(docs: list[dict[str, Any]]) -> list[tuple[dict, dict, str]]:
    """(workload, container, "containers"|"initContainers") for every hookshelf image."""
    found = []
    for workload in by_kind(docs, "Deployment") + by_kind(docs, "StatefulSet"):
        spec = workload["spec"]["template"]["spec"]
        for key in ("initContainers", "containers"):
            for container in spec.get(key, []):
                if container["image"].split(":")[0] == "hookshelf":
                    found.append((workload, container, key))
    return found


def env_of(container: dict[str, Any], settings: dict[str, str]) -> dict[str, str]:
    env = dict(settings)
    env.update({e["name"]: e.get("value", "") for e in container.get("env", [])})
    return env


def test_every_yaml_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert files
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert docs, path
        for doc in docs:
            assert "kind" in doc or "patches" in doc or "resources" in doc, path


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_setting_named_is_a_real_setting(overlay: str) -> None:
    docs = render(overlay)
    known = {f"HOOKSHELF_{name.upper()}" for name in Settings.model_fields}
    named = set(settings_of(docs))
    for _, container, _ in hookshelf_containers(docs):
        named |= {e["name"] for e in container.get("env", [])}
    unknown = {n for n in named if n.startswith("HOOKSHELF_")} - known
    assert not unknown, f"not read by shared/settings.py (silently ignored): {unknown}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_use_grpc_on_the_health_port_the_service_opens(overlay: str) -> None:
    docs = render(overlay)
    settings = settings_of(docs)
    containers = hookshelf_containers(docs)
    assert containers
    for workload, container, _ in containers:
        args = container.get("args", []) + container.get("command", [])
        if "library_service" in args:
            listen = env_of(container, settings)["HOOKSHELF_LIBRARY_HEALTH_LISTEN"]
        elif "executor_service" in args:
            listen = env_of(container, settings)["HOOKSHELF_EXECUTOR_HEALTH_LISTEN"]
        else:
            continue  # the example orchestrator
        where = f"{workload['metadata']['name']}/{container['name']}"
        ports = {p["containerPort"] for p in container["ports"]}
        assert port_of(listen) in ports, where
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == port_of(listen), f"{where} {probe}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_library_service_reaches_the_api_port(overlay: str) -> None:
    docs = render(overlay)
    settings = settings_of(docs)
    (service,) = [
        s for s in by_kind(docs, "Service") if s["metadata"]["name"] == "hookshelf-library"
    ]
    (port,) = service["spec"]["ports"]
    assert port["port"] == port_of(settings["HOOKSHELF_LIBRARY_TARGET"])
    backends = [
        (w, c) for w, c, _ in hookshelf_containers(docs) if "library_service" in c.get("args", [])
    ]
    assert backends
    for workload, container in backends:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert named[port["targetPort"]] == port_of(settings["HOOKSHELF_LIBRARY_LISTEN"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_drain_fits_in_the_termination_grace(overlay: str) -> None:
    docs = render(overlay)
    grace = float(settings_of(docs)["HOOKSHELF_SHUTDOWN_GRACE_SECONDS"])
    for workload, _, _ in hookshelf_containers(docs):
        assert workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_executor_is_a_native_sidecar_sharing_the_socket(overlay: str) -> None:
    docs = render(overlay)
    settings = settings_of(docs)
    (orchestrator,) = by_kind(docs, "StatefulSet")
    spec = orchestrator["spec"]["template"]["spec"]
    (executor,) = [c for c in spec["initContainers"] if "executor_service" in c.get("args", [])]
    assert executor["restartPolicy"] == "Always"
    assert "startupProbe" in executor, "the orchestrator must wait for a healthy executor"

    socket_dir = str(Path(settings["HOOKSHELF_EXECUTOR_LISTEN"].removeprefix("unix:")).parent)
    assert settings["HOOKSHELF_EXECUTOR_TARGET"] == settings["HOOKSHELF_EXECUTOR_LISTEN"]
    mounts = {
        c["name"]: {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        for c in spec["initContainers"] + spec["containers"]
    }
    (main,) = spec["containers"]
    assert mounts["executor"][socket_dir] == mounts[main["name"]][socket_dir]

    # The journal outlives the pod.
    state = settings["HOOKSHELF_EXECUTOR_STATE_DIR"]
    claims = {t["metadata"]["name"] for t in orchestrator["spec"]["volumeClaimTemplates"]}
    assert mounts["executor"][state] in claims


def test_single_node_keeps_sqlite_and_the_mirror_on_a_volume() -> None:
    docs = render("single-node")
    settings = settings_of(docs)
    (library,) = [d for d in by_kind(docs, "Deployment")]
    assert library["spec"]["replicas"] == 1
    assert library["spec"]["strategy"]["type"] == "Recreate"
    spec = library["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert "HOOKSHELF_DATABASE_URL" not in settings  # SQLite in the data dir
    data_volume = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}[
        settings["HOOKSHELF_DATA_DIR"]
    ]
    (volume,) = [v for v in spec["volumes"] if v["name"] == data_volume]
    claim = volume["persistentVolumeClaim"]["claimName"]
    assert claim in {p["metadata"]["name"] for p in by_kind(docs, "PersistentVolumeClaim")}
    assert "emptyDir" not in volume


def test_production_has_replicas_one_mirror_owner_and_requires_the_secret() -> None:
    docs = render("production")
    settings = settings_of(docs)
    library = [
        (w, c) for w, c, _ in hookshelf_containers(docs) if "library_service" in c.get("args", [])
    ]
    owners = [
        w
        for w, c in library
        if env_of(c, settings).get("HOOKSHELF_MIRROR_ENABLED", "true").lower() != "false"
    ]
    assert len(owners) == 1 and owners[0]["spec"]["replicas"] == 1
    assert owners[0]["spec"]["strategy"]["type"] == "Recreate"
    assert sum(w["spec"]["replicas"] for w, _ in library) >= 3

    for _, container, _ in hookshelf_containers(docs):
        refs = [e["secretRef"] for e in container["envFrom"] if "secretRef" in e]
        assert refs == [{"name": "hookshelf-secrets", "optional": False}], container["name"]

    (budget,) = by_kind(docs, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] < sum(w["spec"]["replicas"] for w, _ in library)
