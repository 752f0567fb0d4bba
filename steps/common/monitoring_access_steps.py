"""Steps that check who may reach the monitoring plane: its own pods and the API server's
service proxy, nobody else (infra/monitoring/network-policies.yaml)."""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from pytest_bdd import then

from deployer.lower.prometheus import NAMESPACE, Prometheus, ServiceProxy
from deployer.lower.waiting import wait_until
from steps.support import workloads
from steps.support.environments import Environment
from steps.support.kube import Kube
from steps.support.monitoring import SINK
from steps.support.report import RecordFigure

VLAGENT_PORT = 9429


def plane_ports(kube: Kube) -> list[dict[str, Any]]:
    """Every port every running pod of the plane serves on the pod network (node-exporter
    uses the node's network, where no NetworkPolicy applies)."""
    targets = [
        {
            "name": f"{pod.metadata.name}:{port.container_port}",
            "host": ip,
            "port": port.container_port,
        }
        for pod in kube.core.list_namespaced_pod(NAMESPACE).items
        if (ip := pod.status.pod_ip)
        and pod.status.phase == "Running"
        and not pod.spec.host_network
        and workloads.PROBE_LABEL not in (pod.metadata.labels or {})
        for container in pod.spec.containers
        for port in container.ports or []
    ]
    assert len(targets) >= 5, f"too few monitoring ports to judge: {[t['name'] for t in targets]}"
    return targets


@then("a pod of the monitoring plane opens every port the plane serves")
def _(kube: Kube, toolbox_image: str, record_figure: RecordFigure) -> None:
    """Control: the ports answer, so a refusal from outside is the policy."""
    targets = plane_ports(kube)
    plan = {
        "control": {"host": targets[0]["host"], "port": targets[0]["port"]},
        "targets": targets,
        "retry_s": 60,  # every node admits the new probe on its own
    }
    name = f"reach-inside-{uuid.uuid4().hex[:6]}"
    kube.create(NAMESPACE, workloads.reach_probe(name, toolbox_image, plan))
    try:
        summary = kube.summary_of(NAMESPACE, name, timeout=180)
    finally:
        kube.delete_pod(NAMESPACE, name)
    record_figure("monitoring_ports_probed", len(targets))
    closed = [f"{r['name']} ({r['error']})" for r in summary["results"] if not r["connected"]]
    assert not closed, f"a pod of the monitoring plane could not open {closed}"


@then("dev's client pod reaches dev's API but none of the monitoring plane's ports")
def _(kube: Kube, environment: Environment) -> None:
    targets = plane_ports(kube)
    # Control: the same pod opens the one service its namespace is allowed to reach.
    api = urlsplit(environment.api_url)
    plan = {"control": {"host": api.hostname, "port": api.port}, "targets": targets}
    namespace, pod = environment.client
    code, output = kube.exec(
        namespace, pod, ["python3", "/probe/tcp_reach.py", json.dumps(plan)], timeout=150
    )
    assert code == 0, f"the probe did not run (or its control was never reachable): {output}"
    summary = json.loads(output.strip().splitlines()[-1])
    opened = [r["name"] for r in summary["results"] if r["connected"]]
    assert not opened, f"a pod outside the monitoring plane opened {opened}"


@then(
    "Prometheus, Alertmanager, the alert receiver, VictoriaLogs and the log agent on every node "
    "answer through the API server"
)
def _(kube: Kube) -> None:
    """The way the deployer and the suite read the plane still works behind the policies."""
    checks = {
        "Prometheus": Prometheus(kube.api).ready,
        "Alertmanager": lambda: ServiceProxy(kube.api, "alertmanager:web").answers("-/ready"),
        "the alert receiver": lambda: ServiceProxy(kube.api, f"{SINK}:http").answers("healthz"),
        "VictoriaLogs": lambda: ServiceProxy(kube.api, "victorialogs:http").answers("health"),
    }
    # A pod on a worker is reached only through `allow-api-server` (a pod on the API
    # server's own node is reached as local traffic): vlagent runs on every node.
    for pod in kube.core.list_namespaced_pod(
        NAMESPACE, label_selector="app.kubernetes.io/name=vlagent"
    ).items:
        checks[f"{pod.metadata.name} on {pod.spec.node_name}"] = functools.partial(
            pod_answers, kube, pod.metadata.name, VLAGENT_PORT, "metrics"
        )
    for what, answers in checks.items():
        wait_until(answers, timeout=30, interval=2, describe=f"{what} through the API server")


def pod_answers(kube: Kube, pod: str, port: int, path: str) -> bool:
    kube.core.connect_get_namespaced_pod_proxy_with_path(f"{pod}:{port}", NAMESPACE, path)
    return True
