"""The engine's own clients, run in a pod of an environment's client namespace.

They read, write and queue jobs through the engine API's Service for as long as a
scenario breaks things, log every request, and at the end read back every write the
engine acknowledged and wait for every job it accepted (assets/engine_client.py).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.client.rest import ApiException

from deployer.lower.waiting import WaitTimeout, wait_until
from steps.support import workloads
from steps.support.environments import Environment, api_addresses
from steps.support.kube import Kube

MAX_RUN_S = 900  # the pod's own deadline: a scenario that forgets to stop it leaves nothing


@dataclass
class EngineClients:
    namespace: str
    pod: str
    summary: dict[str, Any] = field(default_factory=dict)
    log_to: Path | None = None  # where stop() keeps every request, for the report

    def requests(self, kube: Kube) -> list[dict[str, Any]]:
        """Every request logged so far (one JSON line each)."""
        lines = kube.logs(self.namespace, self.pod).splitlines()
        return [json.loads(line) for line in lines if line.startswith('{"seq"')]

    def answered_since(self, kube: Kube, moment: float, timeout: float) -> float:
        """When the first request sent at or after ``moment`` got a good answer."""

        def answered() -> float | None:
            good = [r["t"] for r in self.requests(kube) if r["ok"] and r["t"] >= moment]
            return min(good) if good else None

        first, _ = wait_until(
            answered, timeout=timeout, interval=1, describe="the clients answered again"
        )
        return float(first)

    def stop(self, kube: Kube, settle_timeout: float = 300) -> dict[str, Any]:
        """Stop sending; return the summary once writes are read back and jobs are done."""
        if not self.summary:
            code, output = kube.exec(self.namespace, self.pod, ["touch", "/tmp/stop"])
            assert code == 0, f"could not stop the clients: {output}"
            self.keep_log(kube)
            self.summary = kube.summary_of(self.namespace, self.pod, timeout=settle_timeout)
        return self.summary

    def keep_log(self, kube: Kube) -> None:
        """Every request, one JSON line each, beside the report: an approver can check
        which requests failed, when, and in which phase."""
        if self.log_to is not None:
            self.log_to.parent.mkdir(parents=True, exist_ok=True)
            lines = (json.dumps(r) for r in self.requests(kube))
            self.log_to.write_text("".join(f"{line}\n" for line in lines))


def start(
    kube: Kube,
    environment: Environment,
    image: str,
    concurrency: int,
    interval_s: float,
    job_ratio: float = 0.0,
    max_requests: int = 1_000_000,
    timeout_s: float = 3,
    log_dir: Path | None = None,
) -> EngineClients:
    """Start the clients and wait for their first acknowledged request (the control)."""
    name = f"clients-{uuid.uuid4().hex[:6]}"
    env = {
        "URL": environment.api_url,
        "TOKEN": environment.token("writer"),
        "CONCURRENCY": str(concurrency),
        "INTERVAL": str(interval_s),
        "DURATION": str(MAX_RUN_S - 240),
        "MAX_REQUESTS": str(max_requests),
        "JOB_RATIO": str(job_ratio),
        "RUN": name,
        "SETTLE": "2",
        # A client gives up on a hung server like a real one would; the hung pod's
        # share of the requests fail instead of stalling every client for long.
        "TIMEOUT": str(timeout_s),
        "ADMIT": api_addresses(kube, environment),
    }
    pod = workloads.script_pod(name, "engine_client.py", env, image, deadline_s=MAX_RUN_S)
    # Off the workers where it can: the clients must outlive the node a scenario powers off.
    pod["spec"]["tolerations"] = [
        {
            "key": "node-role.kubernetes.io/control-plane",
            "operator": "Exists",
            "effect": "NoSchedule",
        }
    ]
    pod["spec"]["affinity"] = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "preference": {
                        "matchExpressions": [
                            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}
                        ]
                    },
                }
            ]
        }
    }
    kube.create(environment.client_namespace, pod)
    log_to = log_dir / f"{environment.name}-{name}-requests.jsonl" if log_dir else None
    clients = EngineClients(environment.client_namespace, name, log_to=log_to)
    try:
        wait_until(
            lambda: any(r["ok"] for r in clients.requests(kube)),
            timeout=120,
            interval=1,
            describe="the clients' first acknowledged request",
        )
    except WaitTimeout as error:
        raise AssertionError(f"{error}; {not_answered(kube, clients)}") from None
    return clients


def not_answered(kube: Kube, clients: EngineClients) -> str:
    """Why clients got no answer: their pod's phase and its last log lines (what they
    sent and how it failed, or why the pod never ran)."""
    pod = kube.core.read_namespaced_pod(clients.pod, clients.namespace)
    waiting = [
        f"{c.name}: {c.state.waiting.reason}"
        for c in pod.status.container_statuses or []
        if c.state and c.state.waiting
    ]
    try:
        last = kube.logs(clients.namespace, clients.pod).strip().splitlines()[-5:]
    except ApiException as error:
        last = [f"no log: {error.reason}"]
    return f"pod {clients.pod} {pod.status.phase} {waiting or ''} on {pod.spec.node_name}: " + (
        " | ".join(last) or "no log line"
    )


def clock(moment: float) -> str:
    """A request's time as the logs show it, to the millisecond."""
    return time.strftime("%H:%M:%S", time.localtime(moment)) + f".{int(moment % 1 * 1000):03d}"


def failures_between(requests: list[dict[str, Any]], start: float, end: float) -> int:
    return sum(1 for r in requests if start <= r["t"] <= end and not r["ok"])


def longest_gap(requests: list[dict[str, Any]]) -> float:
    """The longest stretch, in seconds, in which no request got a good answer."""
    start, end = longest_gap_bounds(requests)
    return end - start


def longest_gap_bounds(requests: list[dict[str, Any]]) -> tuple[float, float]:
    """When the longest stretch without a good answer began and ended (send times)."""
    if not requests:
        return 0.0, 0.0
    times: list[float] = [r["t"] for r in requests]
    answered: list[float] = sorted(r["t"] for r in requests if r["ok"])
    moments = [min(times), *answered, max(times)]
    return max(zip(moments, moments[1:], strict=False), key=lambda pair: pair[1] - pair[0])


def failure_kinds(requests: list[dict[str, Any]], start: float, end: float) -> dict[str, int]:
    """How the requests sent in [start, end] failed, by phase and error ("connect:
    TimeoutError", "response: HTTP 503"), most frequent first."""
    kinds = Counter(
        r["detail"].split(" (")[0][:60] for r in requests if start <= r["t"] <= end and not r["ok"]
    )
    return dict(kinds.most_common())
