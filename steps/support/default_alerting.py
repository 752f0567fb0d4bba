"""Prometheus and Alertmanager with their default intervals, beside the real ones.

The tuned plane notifies within seconds; the brief's claim is that the defaults
(1-min scrape and evaluation, 30-s group wait) take minutes. The nightly run measures
both on one fault: this second pair scrapes the same kube-state exporter, evaluates
the real rule taken from infra/monitoring (so a change to it is measured too) and
notifies the same receiver, its alerts labelled ``monitor="defaults"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from deployer.lower.prometheus import NAMESPACE, Prometheus
from steps.support.kube import Kube

MONITOR_LABEL = ("monitor", "defaults")
ASSET = Path(__file__).resolve().parents[1] / "assets" / "default-alerting.yaml"
SINK_URL = "http://alert-sink.ce-monitoring.svc:9095/alerts"


def rule(repo: Path, alertname: str) -> dict[str, Any]:
    """The alert rule ``alertname`` exactly as the monitoring plane loads it."""
    for path in sorted((repo / "infra" / "monitoring" / "rules").glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for entry in group["rules"]:
                if entry.get("alert") == alertname:
                    return dict(entry)
    raise AssertionError(f"no alert rule {alertname!r} under infra/monitoring/rules")


def config_maps(repo: Path, alertname: str) -> list[dict[str, Any]]:
    """Configuration with no interval set anywhere: every one is Prometheus' default."""
    prometheus = {
        "global": {"external_labels": dict([MONITOR_LABEL])},
        "rule_files": ["/etc/prometheus/config/defaults.rules.yml"],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": ["alertmanager-defaults.ce-monitoring.svc:9093"]}]}
            ]
        },
        "scrape_configs": [
            {
                "job_name": "kube-state",
                "honor_labels": True,
                "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [NAMESPACE]}}],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                        "regex": "kube-state",
                        "action": "keep",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                        "regex": "metrics",
                        "action": "keep",
                    },
                ],
            }
        ],
    }
    rules = {"groups": [{"name": "defaults", "rules": [rule(repo, alertname)]}]}
    alertmanager = {
        "route": {"receiver": "webhook"},
        "receivers": [
            {
                "name": "webhook",
                "webhook_configs": [{"url": SINK_URL, "send_resolved": True}],
            }
        ],
    }
    return [
        config_map(
            "prometheus-defaults-config",
            {
                "prometheus.yml": yaml.safe_dump(prometheus),
                "defaults.rules.yml": yaml.safe_dump(rules),
            },
        ),
        config_map(
            "alertmanager-defaults-config", {"alertmanager.yml": yaml.safe_dump(alertmanager)}
        ),
    ]


def config_map(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "ce-suite"}},
        "data": data,
    }


def manifests(repo: Path, alertname: str) -> list[dict[str, Any]]:
    return config_maps(repo, alertname) + list(yaml.safe_load_all(ASSET.read_text()))


def install(kube: Kube, repo: Path, alertname: str) -> list[dict[str, Any]]:
    objects = manifests(repo, alertname)
    for manifest in objects:
        kube.create(NAMESPACE, manifest)
    return objects


def remove(kube: Kube, objects: list[dict[str, Any]]) -> None:
    deleters = {
        "ConfigMap": kube.core.delete_namespaced_config_map,
        "Service": kube.core.delete_namespaced_service,
        "Deployment": kube.apps.delete_namespaced_deployment,
    }
    for manifest in objects:
        try:
            deleters[manifest["kind"]](manifest["metadata"]["name"], NAMESPACE)
        except ApiException as error:
            if error.status != 404:
                raise


def server(kube: Kube) -> Prometheus:
    return Prometheus(kube.api, "prometheus-defaults:web")


def evaluated(prometheus: Prometheus, alertname: str) -> bool:
    """kube-state scraped and the rule evaluated at least once: the clock may start."""
    if not prometheus.query('up{job="kube-state"} == 1'):
        return False
    groups = prometheus.proxy.call("GET", "api/v1/rules")["data"]["groups"]
    return any(
        entry.get("name") == alertname
        and not entry.get("lastEvaluation", "0001").startswith("0001")  # Go's zero time
        for group in groups
        for entry in group["rules"]
    )
