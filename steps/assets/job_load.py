"""Bounded job submitter run inside a pod: POST a CPU-heavy job to URL RATE times a
second for DURATION seconds; prints one JSON summary line (submitted, errors)."""

import json
import os
import time
import urllib.request

from admission import wait_admitted

URL = os.environ["URL"]
TOKEN = os.environ["TOKEN"]
RATE = float(os.environ.get("RATE", "4"))
DURATION = float(os.environ.get("DURATION", "120"))
ITERATIONS = int(os.environ.get("ITERATIONS", "150000"))


def submit(sequence: int) -> str:
    body = json.dumps({"input": f"load-{sequence}", "iterations": ITERATIONS}).encode()
    request = urllib.request.Request(URL, data=body, method="POST")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return "" if response.status == 202 else f"HTTP {response.status}"
    except Exception as error:  # noqa: BLE001 - every failure is data here
        return type(error).__name__


def main() -> None:
    admitted_after = wait_admitted(URL, TOKEN)  # a GET: 405 is an answer, nothing is queued
    started = time.monotonic()
    submitted, errors = 0, dict[str, int]()
    sequence = 0
    while time.monotonic() - started < DURATION:
        due = started + sequence / RATE
        time.sleep(max(0.0, due - time.monotonic()))
        failure = submit(sequence)
        sequence += 1
        if failure:
            errors[failure] = errors.get(failure, 0) + 1
        else:
            submitted += 1
    summary = {
        "submitted": submitted,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "admitted_after_s": round(admitted_after, 1),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
