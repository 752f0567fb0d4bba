"""The real server process: several workers, one /metrics for all, and a graceful drain."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from .conftest import DATA_KEY, free_port
from .test_api import KEY, token

# Long enough for the checks below to land inside the drain on a loaded machine (the
# pipeline's test stage runs this beside a whole acceptance run: readiness took > 2 s).
DRAIN_SECONDS = 10
SRC = Path(__file__).resolve().parents[1] / "src"


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def server(database_url: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "ENGINE_ENV": "test",
        "ENGINE_DATABASE_URL": database_url,
        "ENGINE_JWT_KEY": KEY,
        "ENGINE_DATA_KEY": DATA_KEY,
        "ENGINE_WORKERS": "2",
        "ENGINE_DRAIN_SECONDS": str(DRAIN_SECONDS),
        "ENGINE_PORT": str(port),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "ce_engine.api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, 60, "readiness")
        yield process, base
    finally:
        if process.poll() is None:
            process.terminate()  # the way it is stopped for real: it removes its metrics files
            try:
                process.wait(timeout=DRAIN_SECONDS + 25)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait(timeout=30)


def healthz_count(base: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    found = re.search(
        r'^engine_http_requests_total\{method="GET",route="/healthz",status="200"\} (\S+)$',
        text,
        re.MULTILINE,
    )
    return float(found.group(1)) if found else 0.0


def test_metrics_sum_every_worker_process(
    server: tuple[subprocess.Popen[bytes], str],
) -> None:
    _, base = server
    before = healthz_count(base)
    for _ in range(40):  # a new connection each time, so both workers take some
        assert httpx.get(f"{base}/healthz").status_code == 200
    assert healthz_count(base) - before == 40


def test_sigterm_turns_readiness_off_keeps_serving_then_exits_cleanly(
    server: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, base = server
    process.send_signal(signal.SIGTERM)
    wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 503, 5, "readiness to turn off")
    assert httpx.get(f"{base}/readyz").json()["error"] == "draining"
    served = httpx.post(f"{base}/v1/sessions", json={"title": "late"}, headers=token("writer"))
    assert served.status_code == 201, "requests arriving during the drain are still served"
    process.wait(timeout=DRAIN_SECONDS + 25)
    assert process.returncode == 0
