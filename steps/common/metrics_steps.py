"""Steps about resource metrics (metrics.k8s.io, served by metrics-server)."""

from __future__ import annotations

from typing import Any

from pytest_bdd import then

from deployer.lower.kube import node_states
from deployer.lower.waiting import wait_until
from steps.common.workload_steps import WebServers
from steps.support.kube import Kube


def metric_items(kube: Kube, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
    if namespace:
        listing = kube.custom.list_namespaced_custom_object(
            "metrics.k8s.io", "v1beta1", namespace, plural
        )
    else:
        listing = kube.custom.list_cluster_custom_object("metrics.k8s.io", "v1beta1", plural)
    items: list[dict[str, Any]] = listing.get("items", [])
    return items


@then("resource metrics are reported for every node")
def _(kube: Kube) -> None:
    expected = {state.name for state in node_states(kube.api)}

    def reported() -> set[str]:
        return {
            item["metadata"]["name"]
            for item in metric_items(kube, "nodes")
            if item.get("usage", {}).get("cpu") and item.get("usage", {}).get("memory")
        }

    wait_until(
        lambda: reported() >= expected,
        timeout=120,
        interval=5,
        describe=f"node metrics for {sorted(expected)}",
    )


@then("resource metrics are reported for the web server pods")
def _(kube: Kube, namespace: str, web_servers: WebServers) -> None:
    expected = {pod.name for pod in web_servers.pods}

    def reported() -> set[str]:
        return {
            item["metadata"]["name"]
            for item in metric_items(kube, "pods", namespace)
            if item.get("containers")
        }

    wait_until(
        lambda: reported() >= expected,
        timeout=150,
        interval=5,
        describe=f"pod metrics for {sorted(expected)}",
    )
