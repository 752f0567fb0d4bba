"""What the observability scenarios read: the critical-metrics catalogue, the alert
receiver Alertmanager delivers to, and the log store's query API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from deployer.lower.prometheus import NAMESPACE, ServiceProxy

SINK = "alert-sink"
ENGINE_WORKLOADS = ("engine-api", "engine-worker", "engine-postgres")


@dataclass(frozen=True)
class Layer:
    name: str
    per: str
    interval_s: float
    metrics: tuple[str, ...]
    job: str = ""


def catalogue(repo: Path) -> list[Layer]:
    """infra/monitoring/critical-metrics.yaml: the one declared list of critical metrics."""
    document = yaml.safe_load((repo / "infra" / "monitoring" / "critical-metrics.yaml").read_text())
    return [
        Layer(
            name=name,
            per=layer["per"],
            interval_s=float(layer["interval_s"]),
            metrics=tuple(layer["metrics"]),
            job=layer.get("job", ""),
        )
        for name, layer in document["layers"].items()
    ]


@dataclass(frozen=True)
class Notification:
    received_at: float
    status: str  # "firing" or "resolved" (per alert)
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float | None = None  # when Prometheus saw the rule fire (its own clock)

    def is_about(self, alertname: str, labels: dict[str, str], status: str, since: float) -> bool:
        """A ``status`` notification of ``alertname`` carrying ``labels``, received at or
        after ``since``."""
        return (
            self.received_at >= since
            and self.status == status
            and self.labels.get("alertname") == alertname
            and all(self.labels.get(k) == v for k, v in labels.items())
        )


class AlertSink:
    """Notifications the receiver got, read through the API server's service proxy."""

    def __init__(self, api: client.ApiClient) -> None:
        self.proxy = ServiceProxy(api, f"{SINK}:http", NAMESPACE)

    def ready(self) -> bool:
        return self.proxy.answers("healthz")

    def notifications(self) -> list[Notification]:
        received = self.proxy.call("GET", "alerts")
        return [
            Notification(
                received_at=float(entry["received_at"]),
                status=alert.get("status", ""),
                labels=dict(alert.get("labels", {})),
                annotations=dict(alert.get("annotations", {})),
                starts_at=timestamp(alert.get("startsAt")),
            )
            for entry in received
            for alert in entry["payload"].get("alerts", [])
        ]


def timestamp(rfc3339: str | None) -> float | None:
    """Alertmanager's RFC 3339 time (nanoseconds, "Z") as seconds since the epoch."""
    if not rfc3339:
        return None
    return datetime.fromisoformat(rfc3339).timestamp()


class LogStore:
    """VictoriaLogs' LogsQL query API, through the API server's service proxy."""

    def __init__(self, api: client.ApiClient) -> None:
        self.proxy = ServiceProxy(api, "victorialogs:http", NAMESPACE)

    def query(self, logsql: str, limit: int = 100) -> list[dict[str, Any]]:
        body = self.proxy.text(
            "GET", "select/logsql/query", [("query", logsql), ("limit", str(limit))]
        )
        return [json.loads(line) for line in body.splitlines() if line.strip()]
