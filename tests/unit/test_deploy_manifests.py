"""deploy/: every overlay builds with `kubectl kustomize`, and what it builds is wired the
way the services read it: every HOOKSHELF_* name is a real setting, probes hit the health
ports the settings open, the executor is a native sidecar, production has exactly one
file-mirror owner. And it is secure by default: secrets arrive as files from required
Secret volumes, each container gets only the ones it uses, production runs mutual TLS,
NetworkPolicies let only the library's clients reach it (evaluated here the way the API
server defines them), every pod meets the restricted Pod Security profile, and every
workload runs the same, tagged image.
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if p.is_dir())
PRODUCTION = [o for o in OVERLAYS if o.startswith("production")]
KUBECTL = shutil.which("kubectl")
NAMESPACE = "hookshelf"


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
            if isinstance(doc, list):  # a JSON 6902 patch
                assert all("op" in op and "path" in op for op in doc), path
            else:
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


@pytest.mark.parametrize("overlay", PRODUCTION)
def test_production_has_replicas_and_one_mirror_owner(overlay: str) -> None:
    docs = render(overlay)
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

    (budget,) = by_kind(docs, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] < sum(w["spec"]["replicas"] for w, _ in library)


# --- secure by default ---------------------------------------------------------------------


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return by_kind(docs, "Deployment") + by_kind(docs, "StatefulSet")


def role_of(container: dict[str, Any]) -> str:
    args = container.get("args", []) + container.get("command", [])
    if "library_service" in args:
        return "library"
    if "executor_service" in args:
        return "executor"
    return "orchestrator"


def secret_files(workload: dict[str, Any], container: dict[str, Any]) -> dict[str, tuple]:
    """Every file a container sees from a Secret: path → (Secret name, key)."""
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"].get("volumes", [])}
    files = {}
    for mount in container.get("volumeMounts", []):
        secret = volumes.get(mount["name"], {}).get("secret")  # else a volume claim template
        if secret is None:
            continue
        assert "subPath" not in mount, "a subPath mount never sees a rotated Secret"
        assert "items" in secret, f"{mount['name']}: list the keys, so each one is required"
        for item in secret["items"]:
            files[f"{mount['mountPath']}/{item['path']}"] = (secret["secretName"], item["key"])
    return files


def file_settings(container: dict[str, Any]) -> dict[str, str]:
    return {
        e["name"]: e["value"]
        for e in container.get("env", [])
        if e["name"].startswith("HOOKSHELF_") and e["name"].endswith("_FILE")
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_required_files_and_each_container_gets_only_its_own(overlay: str) -> None:
    docs = render(overlay)
    production = overlay.startswith("production")
    expected = {
        "library": {
            "HOOKSHELF_AUTH_TOKEN_FILE": ("hookshelf-secrets", "auth-token"),
            "HOOKSHELF_EXECUTOR_TOKEN_FILE": ("hookshelf-secrets", "executor-token"),
        },
        "executor": {"HOOKSHELF_EXECUTOR_TOKEN_FILE": ("hookshelf-secrets", "executor-token")},
        "orchestrator": {"HOOKSHELF_EXECUTOR_TOKEN_FILE": ("hookshelf-secrets", "executor-token")},
    }
    if production:
        expected["library"] |= {
            "HOOKSHELF_DATABASE_URL_FILE": ("hookshelf-secrets", "database-url"),
            "HOOKSHELF_SECRET_KEY_FILE": ("hookshelf-secrets", "secret-key"),
            "HOOKSHELF_TLS_CERT_FILE": ("hookshelf-library-tls", "tls.crt"),
            "HOOKSHELF_TLS_KEY_FILE": ("hookshelf-library-tls", "tls.key"),
            "HOOKSHELF_TLS_CLIENT_CA_FILE": ("hookshelf-library-tls", "ca.crt"),
        }
        expected["executor"] |= {
            "HOOKSHELF_TLS_CA_FILE": ("hookshelf-executor-tls", "ca.crt"),
            "HOOKSHELF_TLS_CLIENT_CERT_FILE": ("hookshelf-executor-tls", "tls.crt"),
            "HOOKSHELF_TLS_CLIENT_KEY_FILE": ("hookshelf-executor-tls", "tls.key"),
        }
    seen = set()
    for workload, container, _ in hookshelf_containers(docs):
        where = f"{workload['metadata']['name']}/{container['name']}"
        role = role_of(container)
        seen.add(role)
        # Never in the environment: no secretRef, and no secretKeyRef but the executor's
        # journal key, which must not be a file (a hook can read the executor's files).
        assert not [e for e in container.get("envFrom", []) if "secretRef" in e], where
        from_secrets = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in container.get("env", [])
            if "valueFrom" in e
        }
        expected_from_secrets = (
            {
                "HOOKSHELF_EXECUTOR_JOURNAL_KEY": {
                    "name": "hookshelf-secrets",
                    "key": "executor-journal-key",
                }
            }
            if role == "executor"
            else {}
        )
        assert from_secrets == expected_from_secrets, where
        files = secret_files(workload, container)
        named = {name: files.get(path) for name, path in file_settings(container).items()}
        assert named == expected[role], where
        # Nothing mounted that the container does not name.
        assert set(files.values()) == set(expected[role].values()), where
    assert seen == {"library", "executor", "orchestrator"}

    for workload in workloads(docs):
        for volume in workload["spec"]["template"]["spec"].get("volumes", []):
            if "secret" in volume:
                # Required: a pod whose Secret (or one of its keys) is missing does not start.
                assert volume["secret"].get("optional") is False, volume["name"]
                assert volume["secret"]["defaultMode"] & 0o007 == 0, "not world-readable"


@pytest.mark.parametrize("overlay", PRODUCTION)
def test_production_serves_mutual_tls_on_the_api_port_only(overlay: str) -> None:
    docs = render(overlay)
    settings = settings_of(docs)
    # Server TLS is per container, never in the shared settings: the executor's unix
    # socket and both health ports (kubelet gRPC probes cannot speak TLS) stay plaintext.
    assert not {n for n in settings if n.startswith("HOOKSHELF_TLS_")}
    for _, container, _ in hookshelf_containers(docs):
        tls = {n for n in file_settings(container) if n.startswith("HOOKSHELF_TLS_")}
        if role_of(container) == "library":
            assert tls == {
                "HOOKSHELF_TLS_CERT_FILE",
                "HOOKSHELF_TLS_KEY_FILE",
                "HOOKSHELF_TLS_CLIENT_CA_FILE",
            }
        elif role_of(container) == "executor":
            assert tls == {
                "HOOKSHELF_TLS_CA_FILE",
                "HOOKSHELF_TLS_CLIENT_CERT_FILE",
                "HOOKSHELF_TLS_CLIENT_KEY_FILE",
            }
        else:
            assert not tls


def test_the_cert_manager_component_issues_the_secrets_production_mounts() -> None:
    docs = render("production-cert-manager")
    certificates = {c["spec"]["secretName"]: c for c in by_kind(docs, "Certificate")}
    issuers = {i["metadata"]["name"] for i in by_kind(docs, "Issuer")}
    mounted = set()
    for workload in workloads(docs):
        for volume in workload["spec"]["template"]["spec"].get("volumes", []):
            if volume.get("secret", {}).get("secretName", "").endswith("-tls"):
                mounted.add(volume["secret"]["secretName"])
    assert mounted == {"hookshelf-library-tls", "hookshelf-executor-tls"}
    assert mounted <= set(certificates)
    for certificate in certificates.values():
        assert certificate["metadata"]["namespace"] == NAMESPACE
        assert certificate["spec"]["issuerRef"]["name"] in issuers
    library = certificates["hookshelf-library-tls"]["spec"]
    target_host = settings_of(docs)["HOOKSHELF_LIBRARY_TARGET"].rsplit(":", 1)[0]
    assert target_host in library["dnsNames"]
    assert "server auth" in library["usages"]
    assert "client auth" in certificates["hookshelf-executor-tls"]["spec"]["usages"]
    # Without the component nothing refers to cert-manager.
    assert not by_kind(render("production"), "Certificate")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_runs_the_same_tagged_image(overlay: str) -> None:
    docs = render(overlay)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    images = {
        f"{w['metadata']['name']}/{c['name']}": c["image"] for w, c, _ in hookshelf_containers(docs)
    }
    assert len(images) >= 3
    assert set(images.values()) == {f"hookshelf:{version}"}, images


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_meets_the_restricted_pod_security_profile(overlay: str) -> None:
    docs = render(overlay)
    (namespace,) = by_kind(docs, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    allowed_volumes = {"configMap", "emptyDir", "persistentVolumeClaim", "secret", "projected"}
    for workload in workloads(docs):
        spec = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        # Nothing in Hookshelf talks to the Kubernetes API.
        assert spec["automountServiceAccountToken"] is False, name
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(key), name
        pod = spec.get("securityContext", {})
        for volume in spec.get("volumes", []):
            assert set(volume) - {"name"} <= allowed_volumes, (name, volume)
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name}/{container['name']}"
            own = container.get("securityContext", {})
            merged = {**pod, **own}
            assert merged.get("runAsNonRoot") is True, where
            assert merged.get("runAsUser", 1) != 0, where
            assert merged.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert own.get("allowPrivilegeEscalation") is False, where
            assert own.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not own.get("capabilities", {}).get("add"), where
            assert own.get("readOnlyRootFilesystem") is True, where
            assert not own.get("privileged"), where
            assert "hostPort" not in str(container.get("ports", [])), where


# --- NetworkPolicy, evaluated ------------------------------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector; {} selects everything."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def namespace_labels(name: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": name}  # set on every namespace (1.21+)


def peer_admits(peer: dict[str, Any], policy_ns: str, source_ns: str, source: dict) -> bool:
    if "ipBlock" in peer:
        return False  # addresses, not pods: no pod source is admitted through one here
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], namespace_labels(source_ns)):
            return False
    elif source_ns != policy_ns:
        return False  # a podSelector alone means the policy's own namespace
    return selects(peer.get("podSelector", {}), source)


def port_matches(rule_port: dict[str, Any], port: int, named: dict[str, int]) -> bool:
    if rule_port.get("protocol", "TCP") != "TCP":
        return False
    if "port" not in rule_port:
        return True
    wanted = rule_port["port"]
    number = named.get(wanted) if isinstance(wanted, str) else wanted
    return number is not None and number <= port <= rule_port.get("endPort", number)


def allowed(
    docs: list[dict[str, Any]],
    target: dict[str, Any],
    port: int,
    source: dict[str, str],
    source_ns: str = NAMESPACE,
) -> bool:
    """Would a TCP connection from a pod (labels, namespace) to the target workload's pods
    on this port be let in, by the NetworkPolicies rendered?"""
    template = target["spec"]["template"]
    labels = template["metadata"]["labels"]
    named = {
        p["name"]: p["containerPort"]
        for c in template["spec"].get("initContainers", []) + template["spec"]["containers"]
        for p in c.get("ports", [])
        if "name" in p
    }
    policies = [
        p
        for p in by_kind(docs, "NetworkPolicy")
        if p["metadata"]["namespace"] == target["metadata"]["namespace"]
        and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], labels)
    ]
    if not policies:
        return True  # not isolated
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from")
            ports = rule.get("ports")
            if peers and not any(
                peer_admits(peer, policy["metadata"]["namespace"], source_ns, source)
                for peer in peers
            ):
                continue
            if ports and not any(port_matches(p, port, named) for p in ports):
                continue
            return True
    return False


def ports_of(workload: dict[str, Any]) -> set[int]:
    spec = workload["spec"]["template"]["spec"]
    return {
        p["containerPort"]
        for c in spec.get("initContainers", []) + spec["containers"]
        for p in c.get("ports", [])
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_executors_and_labelled_clients_reach_the_library(overlay: str) -> None:
    docs = render(overlay)
    settings = settings_of(docs)
    api = port_of(settings["HOOKSHELF_LIBRARY_LISTEN"])
    health = port_of(settings["HOOKSHELF_LIBRARY_HEALTH_LISTEN"])
    metrics = port_of(settings["HOOKSHELF_METRICS_LISTEN"])
    (orchestrator,) = by_kind(docs, "StatefulSet")
    executor_pod = orchestrator["spec"]["template"]["metadata"]["labels"]
    admin = {"app": "anything", "hookshelf.dev/library-client": "true"}
    libraries = [w for w in workloads(docs) if "hookshelf-library" in w["metadata"]["name"]]
    assert libraries
    for library in libraries:
        assert ports_of(library) == {api, health, metrics}
        assert allowed(docs, library, api, executor_pod)
        assert allowed(docs, library, api, admin)
        for port in (api, health, metrics):
            assert not allowed(docs, library, port, {"app": "random"}), port
            assert not allowed(docs, library, port, {}), port
        # The label counts in the library's namespace only.
        assert not allowed(docs, library, api, admin, source_ns="elsewhere")
        assert not allowed(docs, library, api, executor_pod, source_ns="elsewhere")
        assert not allowed(docs, library, api, {"hookshelf.dev/library-client": "false"})
        # A library pod is no client of another.
        library_pod = library["spec"]["template"]["metadata"]["labels"]
        assert not allowed(docs, library, api, library_pod)
        # Prometheus, from the monitoring namespace: the metrics port, nothing else.
        assert allowed(docs, library, metrics, {"app": "prometheus"}, source_ns="monitoring")
        for port in (api, health):
            assert not allowed(docs, library, port, {"app": "prometheus"}, "monitoring")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nothing_but_prometheus_reaches_the_orchestrator_pods(overlay: str) -> None:
    docs = render(overlay)
    (orchestrator,) = by_kind(docs, "StatefulSet")
    health = port_of(settings_of(docs)["HOOKSHELF_EXECUTOR_HEALTH_LISTEN"])
    (executor,) = orchestrator["spec"]["template"]["spec"]["initContainers"]
    metrics = port_of(env_of(executor, settings_of(docs))["HOOKSHELF_METRICS_LISTEN"])
    admin = {"hookshelf.dev/library-client": "true"}
    for port in ports_of(orchestrator):
        assert not allowed(docs, orchestrator, port, admin), port
        assert not allowed(docs, orchestrator, port, {"app": "random"}), port
    assert allowed(docs, orchestrator, metrics, {}, source_ns="monitoring")
    assert not allowed(docs, orchestrator, health, {}, source_ns="monitoring")


def test_the_evaluator_itself() -> None:
    """The NetworkPolicy semantics the tests above rely on, on hand-made policies."""
    target = {
        "metadata": {"name": "t", "namespace": "ns"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "t"}},
                "spec": {"containers": [{"ports": [{"name": "grpc", "containerPort": 80}]}]},
            }
        },
    }

    def policy(*ingress: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "NetworkPolicy",
            "metadata": {"namespace": "ns"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": list(ingress)},
        }

    assert allowed([], target, 80, {}, "other")  # no policy: open
    assert not allowed([policy()], target, 80, {}, "ns")  # selected, no rule: closed
    assert allowed([policy({})], target, 80, {}, "other")  # an empty rule: everything
    named = policy({"ports": [{"port": "grpc"}]})
    assert allowed([named], target, 80, {}, "ns") and not allowed([named], target, 81, {}, "ns")
    both = policy({"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"a": "1"}}}]})
    assert allowed([both], target, 80, {"a": "1"}, "other")
    assert not allowed([both], target, 80, {"a": "2"}, "other")
    expression = policy(
        {"from": [{"podSelector": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]}
    )
    assert allowed([expression], target, 80, {"a": "x"}, "ns")
    assert not allowed([expression], target, 80, {"b": "x"}, "ns")
