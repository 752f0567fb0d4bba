"""Bounded engine client run inside a pod: CONCURRENCY clients (processes, so that TLS
handshakes are not serialised by one interpreter's lock) send reads and writes
to the engine API for DURATION seconds, at most MAX_REQUESTS in total, or until the
file STOP_FILE exists (the suite creates it when its faults are over); one JSON line
per request. A new connection per request, so every request goes through the
Service's routing (a pod that is gone or hung is met, not hidden by keep-alive).

Writes create sessions whose title the client chose; reads fetch one of this client's
acknowledged sessions; jobs (JOB_RATIO of the writes) queue work for engine-worker. At
the end every acknowledged write is read back (after SETTLE seconds, once the faults
are over) and every acknowledged job is awaited until done with the right result; the
summary line says which were lost, changed or never done."""

import hashlib
import http.client
import json
import multiprocessing
import multiprocessing.pool
import os
import random
import socket
import ssl
import sys
import time
import urllib.parse
from typing import Any

from admission import wait_admitted

BASE = urllib.parse.urlsplit(os.environ["URL"])
HOST = BASE.hostname or "localhost"
PORT = BASE.port or 443
TOKEN = os.environ["TOKEN"]
CONCURRENCY = int(os.environ.get("CONCURRENCY", "8"))
DURATION = float(os.environ.get("DURATION", "60"))
MAX_REQUESTS = int(os.environ.get("MAX_REQUESTS", "100000"))
WRITE_RATIO = float(os.environ.get("WRITE_RATIO", "0.3"))
INTERVAL = float(os.environ.get("INTERVAL", "0.1"))  # per client, between requests
TIMEOUT = float(os.environ.get("TIMEOUT", "10"))
SETTLE = float(os.environ.get("SETTLE", "0"))
JOB_RATIO = float(os.environ.get("JOB_RATIO", "0"))
JOB_ITERATIONS = 2000
JOBS_DONE_WITHIN = float(os.environ.get("JOBS_DONE_WITHIN", "180"))
RUN = os.environ.get("RUN", "run")
STOP_FILE = os.environ.get("STOP_FILE", "/tmp/stop")

CONTEXT = ssl.create_default_context()  # the environment's CA, in SSL_CERT_FILE
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
acknowledged: dict[int, str] = {}  # session id -> title a client wrote (gathered at the end)
jobs: dict[int, str] = {}  # job id -> its input (gathered at the end)


class CallFailed(OSError):
    """A request that got no answer, and the phase it failed in."""


def call(method: str, path: str, body: dict[str, object] | None = None) -> tuple[int, Any]:
    """One request on a new connection. A failure says in which phase it happened (TCP
    connect, TLS handshake, or waiting for the answer): a route to a pod that is gone
    fails the first, a server that stalls the last."""
    connection = http.client.HTTPSConnection(HOST, PORT, timeout=TIMEOUT, context=CONTEXT)
    phase = "connect"
    try:
        connection.sock = socket.create_connection((HOST, PORT), timeout=TIMEOUT)
        phase = "tls"
        connection.sock = CONTEXT.wrap_socket(connection.sock, server_hostname=HOST)
        phase = "response"
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=payload, headers=HEADERS)
        response = connection.getresponse()
        text = response.read()
        return response.status, (json.loads(text) if text else {})
    except (OSError, http.client.HTTPException) as failure:
        raise CallFailed(f"{phase}: {type(failure).__name__}: {failure}") from failure
    finally:
        connection.close()


def client(index: int, deadline: float, results: "multiprocessing.Queue[Any]") -> None:
    """One client process; its acknowledged writes and jobs go back through ``results``."""
    rng = random.Random(index)
    own: list[int] = []
    mine: dict[int, str] = {}
    my_jobs: dict[int, str] = {}
    sequence = 0
    while (
        time.monotonic() < deadline
        and not os.path.exists(STOP_FILE)
        and sequence < MAX_REQUESTS // CONCURRENCY
    ):
        write = not own or rng.random() < WRITE_RATIO
        job = write and rng.random() < JOB_RATIO
        started = time.time()
        title = f"{RUN}-{index}-{sequence}"
        try:
            if job:
                document = {"input": title, "iterations": JOB_ITERATIONS}
                status, body = call("POST", "/v1/jobs", document)
                ok = status == 202 and isinstance(body.get("id"), int)
            elif write:
                status, body = call("POST", "/v1/sessions", {"title": title})
                ok = status == 201 and body.get("title") == title
            else:
                wanted = rng.choice(own)
                status, body = call("GET", f"/v1/sessions/{wanted}")
                ok = status == 200 and body.get("id") == wanted
            detail = f"HTTP {status}"
        except (OSError, http.client.HTTPException, ValueError) as failure:
            ok, body, detail = False, {}, f"{type(failure).__name__}: {failure}"
        if ok and job:
            my_jobs[body["id"]] = title
        elif ok and write:
            own.append(body["id"])
            mine[body["id"]] = title
        line = {
            "seq": sequence,
            "client": index,
            "t": started,
            "op": "job" if job else "write" if write else "read",
            "ok": ok,
            "ms": round((time.time() - started) * 1000, 1),
            "detail": detail[:200],
        }
        # One write() of less than PIPE_BUF bytes: lines of several processes never mix.
        os.write(1, (json.dumps(line) + "\n").encode())
        sequence += 1
        time.sleep(max(0.0, INTERVAL - (time.time() - started)))
    results.put((sequence, mine, my_jobs))


def session_intact(item: tuple[int, str]) -> bool:
    """Is this acknowledged session there with the title written? (Asked up to 3 times.)"""
    session_id, title = item
    for attempt in range(3):
        try:
            status, body = call("GET", f"/v1/sessions/{session_id}")
        except (OSError, http.client.HTTPException, ValueError):
            time.sleep(1 + attempt)
            continue
        return bool(status == 200 and body.get("title") == title)
    return False


def read_back(pool: "multiprocessing.pool.Pool") -> list[int]:
    """Every acknowledged session, read again: the ids that are missing or changed."""
    items = sorted(acknowledged.items())
    intact = pool.map(session_intact, items, chunksize=8)
    return [session_id for (session_id, _), ok in zip(items, intact, strict=True) if not ok]


def reflect(text: str) -> str:
    """What engine-worker computes for a job (iterated SHA-256), to check its result."""
    digest = text.encode()
    for _ in range(JOB_ITERATIONS):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def job_state(item: tuple[int, str]) -> str:
    """'pending', 'done' (with the right result) or 'wrong'."""
    job_id, text = item
    try:
        status, body = call("GET", f"/v1/jobs/{job_id}")
    except (OSError, http.client.HTTPException, ValueError):
        return "pending"
    if status != 200 or body.get("status") not in ("done", "failed"):
        return "pending"
    good = body.get("status") == "done" and body.get("result") == reflect(text)
    return "done" if good else "wrong"


def await_jobs(pool: "multiprocessing.pool.Pool") -> tuple[list[int], list[int]]:
    """Poll every acknowledged job until done: (never done, done with a wrong result)."""
    pending, wrong = sorted(jobs.items()), []
    deadline = time.monotonic() + JOBS_DONE_WITHIN
    while pending and time.monotonic() < deadline:
        states = pool.map(job_state, pending, chunksize=8)
        wrong += [
            job_id for (job_id, _), state in zip(pending, states, strict=True) if state == "wrong"
        ]
        pending = [item for item, state in zip(pending, states, strict=True) if state == "pending"]
        if pending:
            time.sleep(1)
    return sorted(job_id for job_id, _ in pending), sorted(wrong)


def main() -> None:
    # Measure the engine, not the NetworkPolicy controller catching up with this pod.
    admitted_after = wait_admitted(
        BASE.geturl() + "/v1/sessions", TOKEN, os.environ.get("ADMIT", "")
    )
    started = time.monotonic()
    results: multiprocessing.Queue[Any] = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(target=client, args=(index, started + DURATION, results))
        for index in range(CONCURRENCY)
    ]
    for process in processes:
        process.start()
    sent = 0
    for _ in processes:  # read before joining: a full queue would block its writer
        count, mine, my_jobs = results.get()
        sent += count
        acknowledged.update(mine)
        jobs.update(my_jobs)
    for process in processes:
        process.join()
    time.sleep(SETTLE)
    with multiprocessing.Pool(CONCURRENCY) as pool:  # the checks are TLS-bound too
        lost = read_back(pool)
        never_done, wrong = await_jobs(pool)
    summary = {
        "done": True,
        "requests": sent,
        "acknowledged_writes": len(acknowledged),
        "lost_writes": lost,
        "acknowledged_jobs": len(jobs),
        "jobs_never_done": never_done,
        "jobs_wrong_result": wrong,
        "admitted_after_s": round(admitted_after, 1),
    }
    print(json.dumps(summary), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
