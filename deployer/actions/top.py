"""`top --env NAME`: a live terminal view of one environment, read from Prometheus.

Request rate, errors, latency (p50/p99), saturation (CPU, in-flight requests,
idle database connections, queued jobs) and replicas, refreshed every two
seconds; `--once` prints a single snapshot (for scripts and CI logs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.table import Table

from deployer.actions.deploy import check_environment, namespace_for
from deployer.lower.prometheus import Prometheus

API = 'job="engine-api", route!~"/healthz|/readyz|/metrics"'


@dataclass(frozen=True)
class Row:
    label: str
    query: str
    unit: str


def rows(namespace: str) -> list[Row]:
    ns = f'namespace="{namespace}"'
    return [
        Row("requests/s", f"sum(rate(engine_http_requests_total{{{ns}, {API}}}[1m]))", "/s"),
        Row(
            "errors (5xx)",
            f'100 * sum(rate(engine_http_requests_total{{{ns}, {API}, status=~"5.."}}[1m]))'
            f" / sum(rate(engine_http_requests_total{{{ns}, {API}}}[1m]))",
            "%",
        ),
        Row(
            "latency p50",
            "1000 * histogram_quantile(0.5, sum by (le) "
            f"(rate(engine_http_request_duration_seconds_bucket{{{ns}, {API}}}[1m])))",
            "ms",
        ),
        Row(
            "latency p99",
            "1000 * histogram_quantile(0.99, sum by (le) "
            f"(rate(engine_http_request_duration_seconds_bucket{{{ns}, {API}}}[1m])))",
            "ms",
        ),
        Row("in flight", f"sum(engine_http_requests_in_flight{{{ns}}})", ""),
        Row(
            "CPU engine-api",
            f'sum(rate(container_cpu_usage_seconds_total{{{ns}, container="engine-api"}}[1m]))',
            "cores",
        ),
        Row("idle DB connections", f'sum(engine_db_pool_available{{{ns}, job="engine-api"}})', ""),
        Row("jobs queued", f"max(engine_jobs_queued{{{ns}}})", ""),
        Row(
            "engine-api replicas",
            f'sum(kube_deployment_status_replicas_available{{{ns}, deployment="engine-api"}})',
            "",
        ),
        Row(
            "engine-worker replicas",
            f'sum(kube_deployment_status_replicas_available{{{ns}, deployment="engine-worker"}})',
            "",
        ),
    ]


def snapshot(prometheus: Prometheus, environment: str) -> Table:
    check_environment(environment)
    namespace = namespace_for(environment)
    table = Table(title=f"Consciousness Engine - {environment} ({time.strftime('%H:%M:%S')})")
    table.add_column("signal")
    table.add_column("value", justify="right")
    for row in rows(namespace):
        samples = prometheus.query(row.query)
        value = samples[0].value if samples else None
        shown = "-" if value is None or value != value else f"{value:,.2f} {row.unit}".strip()
        table.add_row(row.label, shown)
    return table


def run(prometheus: Prometheus, environment: str, once: bool, console: Console) -> None:
    if once:
        console.print(snapshot(prometheus, environment))
        return
    try:
        with Live(snapshot(prometheus, environment), console=console, refresh_per_second=1) as live:
            while True:
                time.sleep(2)
                live.update(snapshot(prometheus, environment))
    except KeyboardInterrupt:
        return
