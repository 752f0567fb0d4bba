"""Prometheus metrics shared by engine-api and engine-worker.

With several server processes (``PROMETHEUS_MULTIPROC_DIR`` set before they
start), every process writes its samples to that directory and ``/metrics``
aggregates them; each gauge says how its per-process values combine.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from ce_engine import VERSION

REQUESTS = Counter("engine_http_requests_total", "HTTP requests", ["route", "method", "status"])
ERRORS = Counter(
    "engine_http_errors_total", "HTTP responses with status >= 500", ["route", "method"]
)
LATENCY = Histogram(
    "engine_http_request_duration_seconds",
    "HTTP request latency",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IN_FLIGHT = Gauge(
    "engine_http_requests_in_flight", "HTTP requests being served", multiprocess_mode="livesum"
)
DB_POOL_SIZE = Gauge(
    "engine_db_pool_connections", "Connections held by the pool", multiprocess_mode="livesum"
)
DB_POOL_AVAILABLE = Gauge(
    "engine_db_pool_available", "Idle connections in the pool", multiprocess_mode="livesum"
)
DB_UP = Gauge(
    "engine_db_up", "1 when the last database check succeeded", multiprocess_mode="livemin"
)
JOBS = Counter("engine_jobs_total", "Jobs finished by the worker", ["status"])
JOB_DURATION = Histogram(
    "engine_job_duration_seconds",
    "Worker time per job",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30),
)
QUEUE_DEPTH = Gauge(
    "engine_jobs_queued", "Jobs waiting in the queue", multiprocess_mode="livemostrecent"
)
BUILD_INFO = Gauge(
    "engine_build_info",
    "Build information",
    ["version", "revision", "environment"],
    multiprocess_mode="max",
)
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def set_build_info(revision: str, environment: str) -> None:
    BUILD_INFO.labels(version=VERSION, revision=revision, environment=environment).set(1)


def exposition() -> tuple[bytes, str]:
    """The text exposition of this process, or of all server processes when there are several."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def process_exited() -> None:
    """Drop this process's live gauges from the aggregate (multi-process mode only)."""
    if os.environ.get(MULTIPROCESS_DIR):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
