"""Steps that hold the cluster's own endpoints to the CIS Kubernetes Benchmark (kubeadm checks),
by trying each endpoint the way an attacker inside the cluster network would."""

from __future__ import annotations

import json
import uuid
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException
from pytest_bdd import then

from deployer.lower.kube import node_states
from steps.support.kube import Kube
from steps.support.provider import NODE_SHELL, ClusterProvider
from steps.support.report import RecordFigure

# Files a kubeadm control plane must keep from everyone but root (CIS 1.1.x, 4.1.x).
PRIVATE_FILES = (
    "/etc/kubernetes/manifests/kube-apiserver.yaml",
    "/etc/kubernetes/manifests/kube-controller-manager.yaml",
    "/etc/kubernetes/manifests/kube-scheduler.yaml",
    "/etc/kubernetes/manifests/etcd.yaml",
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/controller-manager.conf",
    "/etc/kubernetes/scheduler.conf",
    "/etc/kubernetes/pki/ca.key",
    "/etc/kubernetes/pki/apiserver.key",
    "/etc/kubernetes/pki/sa.key",
    "/etc/kubernetes/pki/etcd/ca.key",
    "/etc/kubernetes/pki/etcd/server.key",
    "/etc/kubernetes/ce-security/encryption/config.yaml",
)


def probe_pod(name: str, image: str, node: str, host_network: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "hostNetwork": host_network,
            "terminationGracePeriodSeconds": 0,
            "tolerations": [{"operator": "Exists"}],
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "600"],
                }
            ],
        },
    }


def control_plane_probe(kube: Kube, namespace: str, image: str) -> str:
    """A pod in the control-plane node's network namespace (its 127.0.0.1), created once."""
    control_plane = next(s.name for s in node_states(kube.api) if "control-plane" in s.roles)
    try:
        kube.core.read_namespaced_pod("cp-probe", namespace)
    except ApiException as error:
        if error.status != 404:
            raise
        kube.create(namespace, probe_pod("cp-probe", image, control_plane, host_network=True))
    kube.wait_pods_ready(namespace, ["cp-probe"], timeout=120)
    return "cp-probe"


def curl(kube: Kube, namespace: str, pod: str, *arguments: str) -> tuple[int, str]:
    """curl's exit code and (status code or error) for one request from ``pod``."""
    code, output = kube.exec(
        namespace,
        pod,
        ["curl", "-sk", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", *arguments],
    )
    return code, output.strip()


@then("the kubelet on every node refuses anonymous requests but answers through the API server")
def _(kube: Kube, namespace: str, toolbox_image: str, record_figure: RecordFigure) -> None:
    nodes = node_states(kube.api)
    kube.create(namespace, probe_pod("kubelet-probe", toolbox_image, nodes[-1].name))
    kube.wait_pods_ready(namespace, ["kubelet-probe"], timeout=120)
    for node in nodes:
        # Control: the kubelet answers the API server's authenticated proxy.
        health = kube.core.connect_get_node_proxy_with_path(node.name, "healthz")
        assert health == "ok", f"{node.name}'s kubelet did not answer through the API server"
        code, status = curl(
            kube, namespace, "kubelet-probe", f"https://{node.internal_ip}:10250/pods"
        )
        record_figure(f"kubelet_anonymous_{node.name}", status)
        assert code == 0 and status == "401", f"{node.name}:10250 answered anonymous with {status}"
        code, status = curl(
            kube, namespace, "kubelet-probe", f"http://{node.internal_ip}:10255/pods"
        )
        assert code == 7, f"{node.name} serves the kubelet read-only port 10255 ({code}, {status})"


@then("etcd refuses a client without a certificate of its CA")
def _(kube: Kube, namespace: str, toolbox_image: str, record_figure: RecordFigure) -> None:
    pod = control_plane_probe(kube, namespace, toolbox_image)
    # Control: the API server (a client with etcd's certificates) is healthy on the same etcd.
    etcd_health = kube.api.call_api(
        "/livez/etcd", "GET", auth_settings=["BearerToken"], _preload_content=False
    )[0]
    assert etcd_health.status == 200, "the API server cannot reach etcd"
    code, status = curl(kube, namespace, pod, "https://127.0.0.1:2379/version")
    record_figure("etcd_without_client_certificate", f"curl exit {code}, status {status}")
    assert code != 0 and status in ("000", ""), (
        f"etcd answered a client without a certificate: {status}"
    )


@then("profiling is off on the API server, the controller manager and the scheduler")
def _(kube: Kube, namespace: str, toolbox_image: str, record_figure: RecordFigure) -> None:
    pod = control_plane_probe(kube, namespace, toolbox_image)
    account = f"profiler-{uuid.uuid4().hex[:6]}"
    kube.core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account))
    )
    role = client.V1ClusterRole(
        metadata=client.V1ObjectMeta(name=account),
        rules=[client.V1PolicyRule(non_resource_ur_ls=["/debug/*", "/metrics"], verbs=["get"])],
    )
    binding = client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name=account),
        role_ref=client.V1RoleRef(
            api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=account
        ),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=account, namespace=namespace)],
    )
    kube.rbac.create_cluster_role(role)
    kube.rbac.create_cluster_role_binding(binding)
    targets = {
        "kube-apiserver": "https://127.0.0.1:6443",
        "kube-controller-manager": "https://127.0.0.1:10257",
        "kube-scheduler": "https://127.0.0.1:10259",
    }
    try:
        request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
        token = kube.core.create_namespaced_service_account_token(account, namespace, request)
        auth = ("-H", f"Authorization: Bearer {token.status.token}")
        results = {
            component: {
                "metrics": curl(kube, namespace, pod, *auth, f"{base}/metrics")[1],
                "pprof": curl(kube, namespace, pod, *auth, f"{base}/debug/pprof/")[1],
            }
            for component, base in targets.items()
        }
    finally:
        kube.rbac.delete_cluster_role_binding(account)
        kube.rbac.delete_cluster_role(account)
    record_figure("profiling_endpoints", json.dumps(results, sort_keys=True))
    # Control: the same identity reads /metrics on each, so a 404 below is not an auth failure.
    unanswered = {c: r for c, r in results.items() if r["metrics"] != "200"}
    assert not unanswered, f"/metrics not answered to the probe's identity: {unanswered}"
    profiling = {c: r for c, r in results.items() if r["pprof"] != "404"}
    assert not profiling, f"profiling endpoints are on: {profiling}"


@then("the control plane's keys and configuration files are readable by root only")
def _(cluster_provider: ClusterProvider, kube: Kube, record_figure: RecordFigure) -> None:
    cluster_provider.require(NODE_SHELL, "reading file modes on the control-plane node")
    control_plane = next(s.name for s in node_states(kube.api) if "control-plane" in s.roles)
    code, output = cluster_provider.node_exec(
        control_plane, ["stat", "-c", "%a %U %n", *PRIVATE_FILES]
    )
    assert code == 0, f"stat failed on {control_plane}: {output.decode()[-300:]}"
    modes = {
        path: (mode, owner)
        for mode, owner, path in (line.split(" ", 2) for line in output.decode().splitlines())
    }
    record_figure("control_plane_file_modes", json.dumps(modes, sort_keys=True))
    loose = {p: m for p, (m, owner) in modes.items() if int(m, 8) & 0o077 or owner != "root"}
    assert len(modes) == len(PRIVATE_FILES), f"files missing: {set(PRIVATE_FILES) - set(modes)}"
    assert not loose, f"readable by others than root: {loose}"
