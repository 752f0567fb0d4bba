"""Job submitter run inside a pod: POST a CPU-heavy job to URL RATE times a second for
DURATION seconds or until the file STOP_FILE exists (the suite creates it). The suite
may raise the rate meanwhile by writing a number to RATE_FILE. Each job
carries the request ID <RUN>-<sequence>, so its log lines can be found. Then every
accepted job is awaited until done; one JSON summary line (submitted, errors, the ids
of the jobs never done)."""

import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

from admission import wait_admitted

URL = os.environ["URL"]
TOKEN = os.environ["TOKEN"]
RATE = float(os.environ.get("RATE", "4"))
DURATION = float(os.environ.get("DURATION", "120"))
ITERATIONS = int(os.environ.get("ITERATIONS", "150000"))
RUN = os.environ.get("RUN", "load")
STOP_FILE = os.environ.get("STOP_FILE", "/tmp/stop")
RATE_FILE = os.environ.get("RATE_FILE", "/tmp/rate")
DONE_WITHIN = float(os.environ.get("DONE_WITHIN", "240"))


def call(
    method: str, url: str, body: dict[str, object] | None = None, request_id: str = ""
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    request.add_header("Content-Type", "application/json")
    if request_id:
        request.add_header("X-Request-ID", request_id)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}


def submit(sequence: int) -> tuple[str, int | None]:
    """('' and the job id) when accepted, else (what went wrong, None)."""
    body = {"input": f"load-{sequence}", "iterations": ITERATIONS}
    try:
        status, answer = call("POST", URL, body, request_id=f"{RUN}-{sequence}")
    except Exception as error:  # noqa: BLE001 - every failure is data here
        return type(error).__name__, None
    return ("", answer.get("id")) if status == 202 else (f"HTTP {status}", None)


def await_done(job_ids: list[int]) -> list[int]:
    """Poll the accepted jobs until each is done; the ids still not done at the deadline."""
    pending = set(job_ids)
    deadline = time.monotonic() + DONE_WITHIN
    while pending and time.monotonic() < deadline:
        for job_id in sorted(pending):
            try:
                status, job = call("GET", f"{URL}/{job_id}")
            except Exception:  # noqa: BLE001 - asked again on the next round
                continue
            if status == 200 and job.get("status") == "done" and job.get("result"):
                pending.discard(job_id)
        if pending:
            time.sleep(2)
    return sorted(pending)


def current_rate(rate: float) -> float:
    """The rate the suite last wrote to RATE_FILE, else the one in use."""
    try:
        with open(RATE_FILE) as written:
            return float(written.read().strip()) or rate
    except (OSError, ValueError):
        return rate


def main() -> None:
    # A GET: 405 is an answer, nothing is queued.
    admitted_after = wait_admitted(URL, TOKEN, os.environ.get("ADMIT", ""))
    started = time.monotonic()
    accepted: list[int] = []
    errors = dict[str, int]()
    sequence, rate, due = 0, RATE, started
    while time.monotonic() - started < DURATION and not os.path.exists(STOP_FILE):
        time.sleep(max(0.0, due - time.monotonic()))
        failure, job_id = submit(sequence)
        sequence += 1
        rate = current_rate(rate)
        # Behind schedule (slow answers), catch up by at most a second's worth of jobs.
        due = max(due + 1 / rate, time.monotonic() - 1.0)
        if failure:
            errors[failure] = errors.get(failure, 0) + 1
        elif job_id is not None:
            accepted.append(job_id)
    submitting_s = time.monotonic() - started
    never_done = await_done(accepted)
    summary = {
        "submitted": len(accepted),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "job_ids": accepted,
        "never_done": never_done,
        "submitting_s": round(submitting_s, 1),
        "admitted_after_s": round(admitted_after, 1),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
