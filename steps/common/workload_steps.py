"""Steps that put the suite's probe workloads on the cluster."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from pytest_bdd import given, parsers

from deployer.lower.kube import node_states
from deployer.lower.waiting import wait_until
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
class ServiceUnderTest:
    name: str
    namespace: str
    replicas: int

    @property
    def url(self) -> str:
        return f"http://{self.name}.{self.namespace}.svc.cluster.local:{workloads.WEB_PORT}/"


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


@given(
    parsers.parse("a web service with {replicas:d} replicas spread over the workers"),
    target_fixture="service_under_test",
)
def _(kube: Kube, namespace: str, toolbox_image: str, replicas: int) -> ServiceUnderTest:
    kube.create(namespace, workloads.web_deployment("web", replicas, toolbox_image))
    kube.create(namespace, workloads.service("web", app="web"))

    def available() -> bool:
        status = kube.apps.read_namespaced_deployment("web", namespace).status
        return (status.available_replicas or 0) == replicas

    wait_until(available, timeout=180, interval=1, describe=f"{replicas} available web replicas")
    return ServiceUnderTest("web", namespace, replicas)


@given("a client pod sending requests to the service", target_fixture="traffic")
def _(
    kube: Kube, namespace: str, toolbox_image: str, service_under_test: ServiceUnderTest
) -> Traffic:
    kube.create(
        namespace,
        workloads.traffic_pod(
            "traffic",
            service_under_test.url,
            toolbox_image,
            interval_s=0.2,
            duration_s=300,
            count=1500,
        ),
    )
    kube.wait_pods_ready(namespace, ["traffic"], timeout=120)
    return Traffic(namespace, "traffic", time.time())
