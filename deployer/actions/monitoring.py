"""The monitoring plane (infra/monitoring): install it, and hand it each environment's CA.

Prometheus scrapes the engine over HTTPS and verifies every environment
against that environment's own CA. A CA exists only once its environment is
deployed, so `deploy` publishes it into the engine-cas ConfigMap here, waits
until the kubelet has refreshed Prometheus' mounted copy, then reloads
Prometheus. Until then an environment's slot holds a placeholder CA that
verifies nothing (Prometheus refuses to start with a missing CA file).
"""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from deployer.catalog import go_programs
from deployer.errors import ClusterError
from deployer.lower import certificates, gobuild, proc
from deployer.lower.kube import api_client, pod_exec, ready_endpoints
from deployer.lower.prometheus import NAMESPACE, Prometheus
from deployer.lower.waiting import WaitTimeout, wait_until
from deployer.settings import Paths, load_versions

log = logging.getLogger(__name__)

CA_CONFIGMAP = "engine-cas"
CA_MOUNT = "/etc/prometheus/engine-ca"
PROMETHEUS_POD = "prometheus-0"
ENVIRONMENTS = ("dev", "staging", "production")
WORKLOADS = (
    "statefulset/prometheus",
    "statefulset/victorialogs",
    "deployment/alertmanager",
    "deployment/alert-sink",
    "deployment/kube-state",
    "daemonset/node-exporter",
    "daemonset/vlagent",
)
ROLLOUT_TIMEOUT = 300
PLACEHOLDER_CN = "placeholder: environment not deployed"


def promtool(paths: Paths, arguments: list[str]) -> int:
    """Run promtool from the Prometheus build the image uses; return its exit code."""
    program = go_programs(paths, load_versions(paths))["prometheus"]
    built = gobuild.build(program, paths.go_bin, gobuild.go_version())
    return subprocess.run([str(built.binary("promtool")), *arguments], check=False).returncode


def manifests_dir(paths: Paths) -> Path:
    return paths.repo / "infra" / "monitoring"


def render(paths: Paths, kubectl: Path) -> str:
    """infra/monitoring as kustomize renders it (what `apply` applies)."""
    return proc.run(
        [kubectl, "kustomize", manifests_dir(paths)], timeout=60, describe="kubectl kustomize"
    )


def apply(paths: Paths, kubeconfig: Path, kubectl: Path) -> float:
    """Apply infra/monitoring and wait until every component is ready; return seconds."""
    started = time.monotonic()
    install(paths, kubeconfig, kubectl)
    return wait_ready(kubeconfig, kubectl, started)


def install(paths: Paths, kubeconfig: Path, kubectl: Path) -> None:
    """Apply infra/monitoring without waiting (a new cluster settles meanwhile)."""
    log.info("==> Monitoring: Prometheus, Alertmanager, exporters, VictoriaLogs, vlagent")
    rendered = render(paths, kubectl)
    documents = [doc for doc in yaml.safe_load_all(rendered) if doc]
    kube: list[str | Path] = [kubectl, "--kubeconfig", kubeconfig]

    def server_side_apply(objects: list[dict[str, Any]], what: str) -> None:
        proc.run(
            [*kube, "apply", "--server-side", "--field-manager=ce-deployer", "-f", "-"],
            timeout=120,
            input_text=yaml.safe_dump_all(objects),
            describe=f"kubectl apply {what}",
        )

    server_side_apply([d for d in documents if d["kind"] == "Namespace"], "monitoring namespace")
    api = api_client(kubeconfig)
    ensure_ca_slots(api)
    replace_services_changing_cluster_ip(api, [d for d in documents if d["kind"] == "Service"])
    documents.append(api_server_policy(api_server_addresses(api)))
    server_side_apply([d for d in documents if d["kind"] != "Namespace"], "infra/monitoring")


def api_server_addresses(api: client.ApiClient) -> list[str]:
    """The addresses the API server connects from when it proxies to a pod: those it
    publishes for the ``kubernetes`` Service (a kind node's IP; the control plane's
    network interfaces on EKS, GKE or AKS)."""
    addresses = sorted({address for address, _ in ready_endpoints(api, "default", "kubernetes")})
    if not addresses:
        raise ClusterError("the kubernetes Service publishes no API server address")
    return addresses


def api_server_policy(addresses: list[str]) -> dict[str, Any]:
    """Admits the API server's service proxy (how the deployer and the suite read the
    plane) and nothing else from outside it; see infra/monitoring/network-policies.yaml."""
    blocks = [{"ipBlock": {"cidr": f"{a}/{128 if ':' in a else 32}"}} for a in addresses]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "allow-api-server",
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "ce-monitoring"},
        },
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": blocks}]},
    }


def wait_ready(kubeconfig: Path, kubectl: Path, started: float) -> float:
    """Every monitoring workload rolled out; seconds since ``started``."""
    for workload in WORKLOADS:
        proc.run(
            [
                kubectl,
                "--kubeconfig",
                kubeconfig,
                "-n",
                NAMESPACE,
                "rollout",
                "status",
                workload,
                f"--timeout={ROLLOUT_TIMEOUT}s",
            ],
            timeout=ROLLOUT_TIMEOUT + 30,
            describe=f"rollout of {workload}",
        )
    seconds = time.monotonic() - started
    log.info("   monitoring ready after %.0fs", seconds)
    return seconds


def replace_services_changing_cluster_ip(
    api: client.ApiClient, services: list[dict[str, Any]]
) -> None:
    """Delete a Service that must become headless (or stop being so): clusterIP is immutable.

    Only an older installation has such a Service; apply then creates it anew.
    """
    core = client.CoreV1Api(api)
    for service in services:
        name = service["metadata"]["name"]
        wanted_headless = service["spec"].get("clusterIP") == "None"
        try:
            current = core.read_namespaced_service(name, NAMESPACE)
        except ApiException as error:
            if error.status == 404:
                continue
            raise
        if (current.spec.cluster_ip == "None") != wanted_headless:
            log.info("   replacing Service %s (headless: %s)", name, wanted_headless)
            core.delete_namespaced_service(name, NAMESPACE)


def ensure_ca_slots(api: client.ApiClient) -> None:
    """Create engine-cas with a placeholder for every environment that has no CA yet."""
    core = client.CoreV1Api(api)
    try:
        data = core.read_namespaced_config_map(CA_CONFIGMAP, NAMESPACE).data or {}
        exists = True
    except ApiException as error:
        if error.status != 404:
            raise
        data, exists = {}, False
    missing = {
        f"{env}.crt": certificates.issue_ca(PLACEHOLDER_CN).cert_pem
        for env in ENVIRONMENTS
        if f"{env}.crt" not in data
    }
    if not missing:
        return
    if exists:
        core.patch_namespaced_config_map(CA_CONFIGMAP, NAMESPACE, {"data": missing})
    else:
        core.create_namespaced_config_map(
            NAMESPACE,
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name=CA_CONFIGMAP), data=missing),
        )


def installed(api: client.ApiClient) -> bool:
    try:
        client.CoreV1Api(api).read_namespace(NAMESPACE)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def publish_engine_ca(kubeconfig: Path, environment: str, ca_pem: str) -> None:
    """Let Prometheus verify ``environment``'s engine: store its CA, see it mounted, reload."""
    api = api_client(kubeconfig)
    if not installed(api):
        log.info("   monitoring is not installed: %s's CA not published", environment)
        return
    core = client.CoreV1Api(api)
    key = f"{environment}.crt"
    current = core.read_namespaced_config_map(CA_CONFIGMAP, NAMESPACE).data or {}
    if current.get(key) == ca_pem and _mounted(api, key) == ca_pem.strip():
        return
    core.patch_namespaced_config_map(CA_CONFIGMAP, NAMESPACE, {"data": {key: ca_pem}})
    # A change to the pod makes the kubelet sync its volumes now, not at its next
    # periodic sync (up to a minute or more later).
    core.patch_namespaced_pod(
        PROMETHEUS_POD,
        NAMESPACE,
        {"metadata": {"annotations": {"ce.io/engine-ca-" + environment: str(time.time())}}},
    )
    try:
        _, seconds = wait_until(
            lambda: _mounted(api, key) == ca_pem.strip(),
            timeout=180,
            interval=2,
            describe=f"Prometheus to see {environment}'s CA",
        )
    except WaitTimeout as error:
        raise ClusterError(str(error)) from None
    Prometheus(api).reload()
    log.info(
        "   Prometheus verifies %s's engine with its CA (mounted after %.0fs)", environment, seconds
    )


def _mounted(api: client.ApiClient, key: str) -> str | None:
    code, out, _ = pod_exec(api, NAMESPACE, PROMETHEUS_POD, ["cat", f"{CA_MOUNT}/{key}"])
    return out.strip() if code == 0 else None
