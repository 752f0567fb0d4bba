"""engine-worker: takes queued jobs from Postgres (FOR UPDATE SKIP LOCKED) and does CPU work."""

from __future__ import annotations

import hashlib
import logging
import signal
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ce_engine import logs, metrics
from ce_engine.config import Settings, load_or_exit
from ce_engine.crypto import FieldCipher

log = logging.getLogger("engine.worker")

# The job's row stays locked, and its result uncommitted, until the job is done: a worker
# that dies mid-job (killed, frozen then killed, its node lost) has its transaction
# aborted by Postgres and the job is queued again for another worker. A job is
# therefore finished exactly once, whatever happens to the worker doing it.
CLAIM = """
SELECT id, input, iterations, request_id FROM jobs WHERE status = 'queued' ORDER BY id
FOR UPDATE SKIP LOCKED LIMIT 1
"""
FINISH = "UPDATE jobs SET status = %s, result = %s, finished_at = now() WHERE id = %s"


def reflect(text: str, iterations: int) -> str:
    """The CPU-bound "inference": iterated SHA-256 (deterministic, so results are checkable)."""
    digest = text.encode()
    for _ in range(iterations):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cipher = FieldCipher(settings.data_key)
        self.stop = threading.Event()
        self.healthy = True
        self.database_ok = False

    def run_once(self, connection: psycopg.Connection) -> bool:
        """Process one job if there is one; return whether one was processed."""
        with connection.transaction():
            row = connection.execute(CLAIM).fetchone()
            if row is None:
                queued = connection.execute(
                    "SELECT count(*) FROM jobs WHERE status = 'queued'"
                ).fetchone()
                metrics.QUEUE_DEPTH.set(queued[0] if queued else 0)
                return False
            job_id, text, iterations, request_id = row
            token = logs.request_id.set(request_id)
            started = time.perf_counter()
            try:
                try:
                    result: str | None = reflect(self.cipher.decrypt("input", text), iterations)
                    status = "done"
                except Exception:  # a job that cannot be done (undecryptable input) is failed
                    log.exception("job failed", extra={"fields": {"job_id": job_id}})
                    result, status = None, "failed"
                connection.execute(FINISH, (status, result, job_id))
            finally:
                metrics.JOB_DURATION.observe(time.perf_counter() - started)
                logs.request_id.reset(token)
        # Counted and logged once committed: a job whose commit failed is done again later.
        metrics.JOBS.labels(status).inc()
        if status == "done":
            token = logs.request_id.set(request_id)
            log.info("job done", extra={"fields": {"job_id": job_id, "iterations": iterations}})
            logs.request_id.reset(token)
        return True

    def loop(self) -> None:
        while not self.stop.is_set():
            try:
                with psycopg.connect(
                    self.settings.database_url,
                    connect_timeout=3,
                    application_name="engine-worker",
                    autocommit=True,
                ) as connection:
                    self.database_ok = True
                    metrics.DB_UP.set(1)
                    while not self.stop.is_set():
                        if not self.run_once(connection):
                            self.stop.wait(0.5)
            except psycopg.Error as failure:  # database down, or schema not applied yet
                self.database_ok = False
                metrics.DB_UP.set(0)
                log.warning("database unavailable: %s", failure)
                self.stop.wait(2)


def serve_probes(
    worker: Worker, port: int = 9090, cert_file: str = "", key_file: str = ""
) -> ThreadingHTTPServer:
    """Probes and metrics on ``port``; HTTPS when a certificate is configured."""

    class Probes(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path == "/metrics":
                status, body, kind = 200, generate_latest(), CONTENT_TYPE_LATEST
            elif self.path == "/healthz":
                status, body, kind = (200 if worker.healthy else 500), b"ok", "text/plain"
            elif self.path == "/readyz":
                ready = worker.database_ok and not worker.stop.is_set()
                status, body, kind = (
                    (200 if ready else 503),
                    b"ready" if ready else b"not ready",
                    "text/plain",
                )
            else:
                status, body, kind = 404, b"not found", "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("0.0.0.0", port), Probes)
    if cert_file:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_file, key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    settings = load_or_exit("engine-worker")
    logs.configure("engine-worker", settings.environment, settings.log_level)
    metrics.set_build_info(settings.revision, settings.environment)
    metrics.observe_certificates(metrics.certificate_files(settings.tls_cert_file))
    worker = Worker(settings)

    def on_term(signum: int, frame: FrameType | None) -> None:
        log.info("worker draining: finishing the current job")
        worker.stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    server = serve_probes(worker, cert_file=settings.tls_cert_file, key_file=settings.tls_key_file)
    log.info("engine-worker started")
    worker.loop()
    server.shutdown()
    log.info("engine-worker stopped")


if __name__ == "__main__":
    main()
