"""Bounded HTTP load run inside a pod: CONCURRENCY keep-alive clients GET URL for DURATION
seconds (at most MAX_REQUESTS in total); prints one JSON summary line.

RATE=0: closed loop, each client sends as soon as it has its answer (capacity).
RATE>0: fixed arrival rate shared by the clients; latency is counted from the time a
request was due, so a server that falls behind shows it (no coordinated omission).
STOP_FILE (optional): the load ends when this file exists.
START_AT (Unix time, optional): once admitted, wait until then, so that two loads on two
environments run at the same moment and share whatever else the machine is doing."""

import http.client
import json
import os
import threading
import time
import urllib.parse

from admission import wait_admitted

URL = urllib.parse.urlsplit(os.environ["URL"])
HOST = URL.hostname or "localhost"
# https: verified against the CA in SSL_CERT_FILE (the environment's CA, mounted by the suite).
CONNECTION = http.client.HTTPSConnection if URL.scheme == "https" else http.client.HTTPConnection
PORT = URL.port or (443 if URL.scheme == "https" else 80)
TOKEN = os.environ.get("TOKEN", "")
CONCURRENCY = int(os.environ.get("CONCURRENCY", "8"))
DURATION = float(os.environ.get("DURATION", "20"))
MAX_REQUESTS = int(os.environ.get("MAX_REQUESTS", "20000"))
RATE = float(os.environ.get("RATE", "0"))
START_AT = float(os.environ.get("START_AT", "0"))
STOP_FILE = os.environ.get("STOP_FILE", "")  # the suite creates it to end the load early

latencies: list[float] = []
errors = [0]
error_kinds: dict[str, int] = {}
lock = threading.Lock()


def client(index: int, begin: float, deadline: float) -> None:
    connection = CONNECTION(HOST, PORT, timeout=5)
    headers = {"Authorization": f"Bearer {TOKEN}"} if TOKEN else {}
    sequence = 0
    while time.monotonic() < deadline and not (STOP_FILE and os.path.exists(STOP_FILE)):
        with lock:
            if len(latencies) + errors[0] >= MAX_REQUESTS:
                return
        if RATE > 0:
            due = begin + (sequence * CONCURRENCY + index) / RATE
            sequence += 1
            if due >= deadline:
                return
            time.sleep(max(0.0, due - time.monotonic()))
            started = due
        else:
            started = time.monotonic()
        try:
            connection.request("GET", URL.path or "/", headers=headers)
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
            kind = f"HTTP {response.status}"
        except (OSError, http.client.HTTPException) as failure:
            ok = False
            kind = type(failure).__name__
            connection.close()
            connection = CONNECTION(HOST, PORT, timeout=5)
        elapsed = time.monotonic() - started
        with lock:
            if ok:
                latencies.append(elapsed)
            else:
                errors[0] += 1
                error_kinds[kind] = error_kinds.get(kind, 0) + 1


def main() -> None:
    # Measure the service, not the NetworkPolicy controller catching up with this pod.
    admitted_after = wait_admitted(URL.geturl(), TOKEN, os.environ.get("ADMIT", ""))
    # Late (admitted after START_AT): start now and say by how much, the caller decides.
    start_late = time.time() - START_AT if START_AT else 0.0
    if start_late < 0:
        time.sleep(-start_late)
    started = time.monotonic()
    threads = [
        threading.Thread(target=client, args=(index, started, started + DURATION))
        for index in range(CONCURRENCY)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    ordered = sorted(latencies)

    def percentile(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else 0.0

    print(
        json.dumps(
            {
                "requests": len(ordered),
                "errors": errors[0],
                "seconds": round(wall, 2),
                "rps": round(len(ordered) / wall, 1),
                "p50_ms": round(percentile(0.50) * 1000, 1),
                "p99_ms": round(percentile(0.99) * 1000, 1),
                "concurrency": CONCURRENCY,
                "rate": RATE,
                "admitted_after_s": round(admitted_after, 1),
                "start_late_s": round(max(0.0, start_late), 2),
                "error_kinds": error_kinds,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
