"""Prometheus metrics shared by engine-api and engine-worker."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
IN_FLIGHT = Gauge("engine_http_requests_in_flight", "HTTP requests being served")
DB_POOL_SIZE = Gauge("engine_db_pool_connections", "Connections held by the pool")
DB_POOL_AVAILABLE = Gauge("engine_db_pool_available", "Idle connections in the pool")
DB_UP = Gauge("engine_db_up", "1 when the last database check succeeded")
JOBS = Counter("engine_jobs_total", "Jobs finished by the worker", ["status"])
JOB_DURATION = Histogram(
    "engine_job_duration_seconds",
    "Worker time per job",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30),
)
QUEUE_DEPTH = Gauge("engine_jobs_queued", "Jobs waiting in the queue")
BUILD_INFO = Gauge("engine_build_info", "Build information", ["version", "revision", "environment"])


def set_build_info(revision: str, environment: str) -> None:
    BUILD_INFO.labels(version=VERSION, revision=revision, environment=environment).set(1)
