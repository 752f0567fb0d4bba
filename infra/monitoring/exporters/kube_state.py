"""Kubernetes object state as Prometheus metrics, read from the API server at each scrape.

An equivalent of kube-state-metrics for what our rules and scenarios need
(kube-state-metrics itself is not served by this machine's Go module proxy).
Metric and label names are kube-state-metrics' own, so the rules work
unchanged on a cluster that runs the real one. Runs in ce.local/monitoring
with Debian's python3-prometheus-client and the standard library.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
ROLLOUTS = "/apis/argoproj.io/v1alpha1/rollouts"
OPTIONAL = {ROLLOUTS}  # custom resources: a cluster without their controller has none


class ApiServer:
    """GETs on the Kubernetes API with the pod's service account."""

    def __init__(self) -> None:
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ["KUBERNETES_SERVICE_PORT"]
        self.base = f"https://{host}:{port}"
        self.context = ssl.create_default_context(cafile=f"{ACCOUNT}/ca.crt")

    def items(self, path: str) -> list[dict[str, Any]]:
        with open(f"{ACCOUNT}/token", encoding="utf-8") as handle:  # rotated by the kubelet
            token = handle.read().strip()
        request = urllib.request.Request(
            self.base + path, headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5, context=self.context) as response:
                return list(json.load(response).get("items", []))
        except urllib.error.HTTPError as error:
            if error.code == 404 and path in OPTIONAL:  # that kind's CRD is not installed
                return []
            raise


def gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


def meta(item: dict[str, Any]) -> tuple[str, str]:
    return item["metadata"].get("namespace", ""), item["metadata"]["name"]


def node_metrics(nodes: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    condition = gauge(
        "kube_node_status_condition", "The condition of a node", ["node", "condition", "status"]
    )
    unschedulable = gauge("kube_node_spec_unschedulable", "Node is cordoned", ["node"])
    for node in nodes:
        name = node["metadata"]["name"]
        for cond in node.get("status", {}).get("conditions", []):
            for status in ("true", "false", "unknown"):
                value = 1.0 if cond["status"].lower() == status else 0.0
                condition.add_metric([name, cond["type"], status], value)
        unschedulable.add_metric([name], 1.0 if node["spec"].get("unschedulable") else 0.0)
    yield condition
    yield unschedulable


def workload_metrics(
    deployments: list[dict[str, Any]],
    statefulsets: list[dict[str, Any]],
    daemonsets: list[dict[str, Any]],
) -> Iterator[GaugeMetricFamily]:
    spec = gauge("kube_deployment_spec_replicas", "Desired replicas", ["namespace", "deployment"])
    available = gauge(
        "kube_deployment_status_replicas_available",
        "Available replicas",
        ["namespace", "deployment"],
    )
    unavailable = gauge(
        "kube_deployment_status_replicas_unavailable",
        "Unavailable replicas",
        ["namespace", "deployment"],
    )
    for item in deployments:
        labels = list(meta(item))
        status = item.get("status", {})
        spec.add_metric(labels, float(item["spec"].get("replicas", 1)))
        available.add_metric(labels, float(status.get("availableReplicas", 0)))
        unavailable.add_metric(labels, float(status.get("unavailableReplicas", 0)))
    sts_spec = gauge("kube_statefulset_replicas", "Desired replicas", ["namespace", "statefulset"])
    sts_ready = gauge(
        "kube_statefulset_status_replicas_ready", "Ready replicas", ["namespace", "statefulset"]
    )
    for item in statefulsets:
        labels = list(meta(item))
        sts_spec.add_metric(labels, float(item["spec"].get("replicas", 1)))
        sts_ready.add_metric(labels, float(item.get("status", {}).get("readyReplicas", 0)))
    ds_desired = gauge(
        "kube_daemonset_status_desired_number_scheduled",
        "Nodes that should run the daemon",
        ["namespace", "daemonset"],
    )
    ds_ready = gauge(
        "kube_daemonset_status_number_ready", "Nodes running it Ready", ["namespace", "daemonset"]
    )
    for item in daemonsets:
        labels = list(meta(item))
        status = item.get("status", {})
        ds_desired.add_metric(labels, float(status.get("desiredNumberScheduled", 0)))
        ds_ready.add_metric(labels, float(status.get("numberReady", 0)))
    yield from (spec, available, unavailable, sts_spec, sts_ready, ds_desired, ds_ready)


def rollout_metrics(rollouts: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    """Argo Rollouts run engine-api's pods (kube-state-metrics has no such family;
    these follow its deployment names with ``rollout`` for ``deployment``)."""
    spec = gauge("kube_rollout_spec_replicas", "Desired replicas", ["namespace", "rollout"])
    available = gauge(
        "kube_rollout_status_replicas_available", "Available replicas", ["namespace", "rollout"]
    )
    phase = gauge("kube_rollout_status_phase", "Rollout phase", ["namespace", "rollout", "phase"])
    for item in rollouts:
        labels = list(meta(item))
        status = item.get("status", {})
        spec.add_metric(labels, float(item["spec"].get("replicas", 1)))
        available.add_metric(labels, float(status.get("availableReplicas", 0)))
        for value in ("Healthy", "Progressing", "Paused", "Degraded"):
            phase.add_metric([*labels, value], 1.0 if status.get("phase") == value else 0.0)
    yield from (spec, available, phase)


def pod_metrics(pods: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    info = gauge("kube_pod_info", "Where a pod runs", ["namespace", "pod", "node", "pod_ip"])
    phase = gauge("kube_pod_status_phase", "The pod's phase", ["namespace", "pod", "phase"])
    ready = gauge("kube_pod_status_ready", "Pod Ready condition", ["namespace", "pod", "condition"])
    restarts = CounterMetricFamily(
        "kube_pod_container_status_restarts",
        "Container restarts",
        labels=["namespace", "pod", "container"],
    )
    waiting = gauge(
        "kube_pod_container_status_waiting_reason",
        "Why a container is waiting",
        ["namespace", "pod", "container", "reason"],
    )
    for pod in pods:
        namespace, name = meta(pod)
        status = pod.get("status", {})
        info.add_metric(
            [namespace, name, pod["spec"].get("nodeName", ""), status.get("podIP", "")], 1.0
        )
        for value in PHASES:
            phase.add_metric([namespace, name, value], 1.0 if status.get("phase") == value else 0.0)
        is_ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
        )
        ready.add_metric([namespace, name, "true"], 1.0 if is_ready else 0.0)
        ready.add_metric([namespace, name, "false"], 0.0 if is_ready else 1.0)
        for container in status.get("containerStatuses", []):
            labels = [namespace, name, container["name"]]
            restarts.add_metric(labels, float(container.get("restartCount", 0)))
            reason = container.get("state", {}).get("waiting", {}).get("reason")
            if reason:
                waiting.add_metric([*labels, reason], 1.0)
    yield from (info, phase, ready, restarts, waiting)


def autoscaler_metrics(hpas: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    labels = ["namespace", "horizontalpodautoscaler"]
    minimum = gauge("kube_horizontalpodautoscaler_spec_min_replicas", "Lower bound", labels)
    maximum = gauge("kube_horizontalpodautoscaler_spec_max_replicas", "Upper bound", labels)
    current = gauge("kube_horizontalpodautoscaler_status_current_replicas", "Current", labels)
    desired = gauge("kube_horizontalpodautoscaler_status_desired_replicas", "Desired", labels)
    for item in hpas:
        values = list(meta(item))
        status = item.get("status", {})
        minimum.add_metric(values, float(item["spec"].get("minReplicas", 1)))
        maximum.add_metric(values, float(item["spec"]["maxReplicas"]))
        current.add_metric(values, float(status.get("currentReplicas", 0)))
        desired.add_metric(values, float(status.get("desiredReplicas", 0)))
    yield from (minimum, maximum, current, desired)


def claim_metrics(claims: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    phase = gauge(
        "kube_persistentvolumeclaim_status_phase",
        "The claim's phase",
        ["namespace", "persistentvolumeclaim", "phase"],
    )
    for claim in claims:
        namespace, name = meta(claim)
        for value in ("Pending", "Bound", "Lost"):
            current = claim.get("status", {}).get("phase")
            phase.add_metric([namespace, name, value], 1.0 if current == value else 0.0)
    yield phase


class StateCollector(Collector):
    def __init__(self, api: ApiServer) -> None:
        self.api = api

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        started = time.monotonic()
        ok = 1.0
        try:
            yield from node_metrics(self.api.items("/api/v1/nodes"))
            yield from workload_metrics(
                self.api.items("/apis/apps/v1/deployments"),
                self.api.items("/apis/apps/v1/statefulsets"),
                self.api.items("/apis/apps/v1/daemonsets"),
            )
            yield from rollout_metrics(self.api.items(ROLLOUTS))
            yield from pod_metrics(self.api.items("/api/v1/pods"))
            yield from autoscaler_metrics(
                self.api.items("/apis/autoscaling/v2/horizontalpodautoscalers")
            )
            yield from claim_metrics(self.api.items("/api/v1/persistentvolumeclaims"))
        except OSError as failure:  # API server unreachable: say so, do not invent state
            print(f"kube-state: listing failed: {failure}", file=sys.stderr, flush=True)
            ok = 0.0
        health = gauge("kube_state_list_success", "1 when the last listing succeeded", [])
        health.add_metric([], ok)
        took = gauge("kube_state_list_duration_seconds", "Time to list the objects", [])
        took.add_metric([], time.monotonic() - started)
        yield health
        yield took


def main() -> None:
    REGISTRY.register(StateCollector(ApiServer()))
    start_http_server(int(os.environ.get("PORT", "8080")))
    print("kube-state exporter listening", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
