"""Steps that put the suite's probe workloads on the cluster."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pytest_bdd import given, parsers

from deployer.lower.kube import node_states
from steps.support import workloads
from steps.support.kube import Kube


@dataclass(frozen=True)
class WebPod:
    name: str
    node: str
    ip: str


@dataclass(frozen=True)
class WebServers:
    """One probe web server per worker, behind one Service."""

    service: str
    pods: tuple[WebPod, ...]


@dataclass(frozen=True)
class Traffic:
    namespace: str
    pod: str
    started_at: float

    def requests(self, kube: Kube) -> list[dict[str, Any]]:
        """Every request the client has logged so far (one JSON line each)."""
        lines = kube.logs(self.namespace, self.pod).splitlines()
        return [json.loads(line) for line in lines if line.startswith('{"seq"')]


def worker_nodes(kube: Kube) -> list[str]:
    return [s.name for s in node_states(kube.api) if "control-plane" not in s.roles and s.ready]


@given(
    parsers.parse('a web server on each worker node behind the service "{service}"'),
    target_fixture="web_servers",
)
def _(kube: Kube, namespace: str, toolbox_image: str, service: str) -> WebServers:
    names = []
    for index, node in enumerate(worker_nodes(kube)):
        name = f"{service}-{index}"
        kube.create(namespace, workloads.web_pod(name, node, toolbox_image, app=service))
        names.append(name)
    kube.create(namespace, workloads.service(service, app=service))
    kube.wait_pods_ready(namespace, names)
    pods = []
    for name in names:
        pod = kube.core.read_namespaced_pod(name, namespace)
        pods.append(WebPod(name, pod.spec.node_name, pod.status.pod_ip))
    return WebServers(service, tuple(pods))
