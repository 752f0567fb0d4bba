"""Prometheus metrics shared by engine-api and engine-worker.

With several server processes (``PROMETHEUS_MULTIPROC_DIR`` set before they
start), every process writes its samples to that directory and ``/metrics``
aggregates them; each gauge says how its per-process values combine.
"""

from __future__ import annotations

import os

from cryptography import x509
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
CERT_EXPIRY = Gauge(
    "engine_tls_certificate_expiry_timestamp_seconds",
    "When a certificate this process uses stops being valid (Unix time, notAfter)",
    ["certificate"],
    multiprocess_mode="min",
)
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def observe_certificates(files: dict[str, str]) -> None:
    """Publish the expiry of each certificate file in use ({label: path}; empty paths skipped),
    so an alert can fire well before a certificate lapses."""
    for label, path in files.items():
        if not path or not os.path.exists(path):
            continue
        with open(path, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        CERT_EXPIRY.labels(certificate=label).set(cert.not_valid_after_utc.timestamp())


def certificate_files(server_cert: str = "") -> dict[str, str]:
    """The certificates of this process: its server certificate, and libpq's client and CA."""
    return {
        "server": server_cert,
        "database-client": os.environ.get("PGSSLCERT", ""),
        "ca": os.environ.get("PGSSLROOTCERT", ""),
    }


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
