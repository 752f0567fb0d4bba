"""Manifests for the suite's own probe workloads (toolbox image, bounded, labelled)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parent.parent / "assets"
WEB_PORT = 8080
PROBE_LABEL = "ce.test/role"
# The engine's URL names its Service in full (4 dots). Under Kubernetes' default ndots:5
# every lookup first tries each search domain: three NXDOMAIN rounds of A and AAAA per
# request, since the clients open a new connection for each (CoreDNS used 11 % of a
# core during R1.4). With ndots:4 a full name is asked as it is; short names still
# go through the search domains.
CLIENT_DNS = {"options": [{"name": "ndots", "value": "4"}]}


def reach_script() -> str:
    """assets/tcp_reach.py's source, to run inline where no ConfigMap is mounted (a probe
    pod in a namespace it probes from, the engine's own container)."""
    return (ASSETS / "tcp_reach.py").read_text()


def assets_configmap(name: str = "probe-assets") -> dict[str, Any]:
    """The probe server and HTTP client scripts, mounted into toolbox pods at /probe."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {path.name: path.read_text() for path in sorted(ASSETS.glob("*.py"))},
    }


def probe_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    volume = {"name": "probe", "configMap": {"name": "probe-assets"}}
    mount = {"name": "probe", "mountPath": "/probe", "readOnly": True}
    return volume, mount


def _web_container(image: str) -> dict[str, Any]:
    _, mount = probe_volume()
    return {
        "name": "web",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "/probe/probe_server.py"],
        "ports": [{"containerPort": WEB_PORT, "name": "http"}],
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": WEB_PORT},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": WEB_PORT},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {"cpu": "20m", "memory": "32Mi"},
            "limits": {"cpu": "200m", "memory": "128Mi"},
        },
        "volumeMounts": [mount],
    }


def web_pod(name: str, node: str, image: str, app: str) -> dict[str, Any]:
    """A web server pinned to ``node``; it doubles as a client (curl, getent) for probes."""
    volume, _ = probe_volume()
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app, PROBE_LABEL: "web"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [_web_container(image)],
            "volumes": [volume],
        },
    }


def service(name: str, app: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": app},
            "ports": [{"port": WEB_PORT, "targetPort": WEB_PORT, "name": "http"}],
        },
    }


def traffic_pod(
    name: str,
    url: str,
    image: str,
    interval_s: float,
    duration_s: float,
    count: int,
    token: str = "",
    timeout_s: float = 2,
    admit: str = "",
) -> dict[str, Any]:
    """A bounded client that GETs ``url`` and logs one JSON line per request, after every
    pod in ``admit`` ("ip:port,...") has admitted it (see assets/admission.py)."""
    env = {
        "ADMIT": admit,
        "URL": url,
        "INTERVAL": str(interval_s),
        "DURATION": str(duration_s),
        "COUNT": str(count),
        "TIMEOUT": str(timeout_s),
        "TOKEN": token,
    }
    return script_pod(name, "http_probe.py", env, image, deadline_s=int(duration_s) + 60)


def script_pod(
    name: str, script: str, env: dict[str, str], image: str, deadline_s: int
) -> dict[str, Any]:
    """A run-once pod that runs one of the probe scripts (stdout is its result)."""
    volume, mount = probe_volume()
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {PROBE_LABEL: Path(script).stem}},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": deadline_s,
            "dnsConfig": CLIENT_DNS,
            "containers": [
                {
                    "name": "run",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python3", "-u", f"/probe/{script}"],
                    # Trust the environment's CA where the namespace has one (client namespaces).
                    "env": [{"name": "SSL_CERT_FILE", "value": "/etc/engine-ca/ca.crt"}]
                    + [{"name": k, "value": v} for k, v in env.items()],
                    "volumeMounts": [mount, {"name": "ca", "mountPath": "/etc/engine-ca"}],
                }
            ],
            "volumes": [
                volume,
                {"name": "ca", "configMap": {"name": "engine-ca", "optional": True}},
            ],
        },
    }


def chaos_agent(name: str, node: str, image: str) -> dict[str, Any]:
    """A privileged pod in the node's PID namespace, used to kill a container's processes."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {PROBE_LABEL: "chaos"}},
        "spec": {
            "nodeName": node,
            "hostPID": True,
            "terminationGracePeriodSeconds": 0,
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "agent",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                    "securityContext": {"privileged": True},
                }
            ],
        },
    }


def capture_pod(name: str, node: str, image: str, env: dict[str, str]) -> dict[str, Any]:
    """The packet-capture script on ``node``'s own network namespace (privileged)."""
    pod = script_pod(name, "capture.py", env, image, deadline_s=120)
    pod["spec"].update(
        {"nodeName": node, "hostNetwork": True, "tolerations": [{"operator": "Exists"}]}
    )
    pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    return pod


def deny_all_ingress(name: str = "deny-all-ingress") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }


def reach_probe(
    name: str,
    image: str,
    plan: dict[str, Any],
    labels: dict[str, str] | None = None,
    service_account: str | None = None,
) -> dict[str, Any]:
    """A run-once, never-Ready pod that reports which TCP targets it can open
    (assets/tcp_reach.py, inlined: it needs no ConfigMap in the namespace it probes from)."""
    script = reach_script()
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "restartPolicy": "Never",
        "activeDeadlineSeconds": 150,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "probe",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["python3", "-c", script, json.dumps(plan)],
                "readinessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 60},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                    "readOnlyRootFilesystem": True,
                },
                "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}},
            }
        ],
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {PROBE_LABEL: "tcp_reach", **(labels or {})}},
        "spec": spec,
    }
