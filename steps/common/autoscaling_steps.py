"""Steps that load the engine (requests and queued jobs) and watch its autoscalers act."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.rest import ApiException
from pytest_bdd import parsers, then, when

from deployer.lower.waiting import WaitTimeout, wait_until
from steps.support import workloads
from steps.support.environments import Environment, api_addresses
from steps.support.kube import Kube, is_ready
from steps.support.monitoring import LogStore
from steps.support.report import RecordFigure

log = logging.getLogger(__name__)

# Each scales on its own load: engine-api on requests (CPU), engine-worker on jobs (CPU).
SCALED = ("engine-api", "engine-worker")
# About 0.135 CPU-second per job (measured: 1 job/s kept engine-worker's two pods at 55 %
# of their 100m, under its 70 % target): 2/s is ~270m, about twice what they may use
# before it adds pods. Not more: a backlog of jobs takes whatever CPU the 2 shared cores
# have left, and at 4/s engine-api's pods never got past 48 % of their request (target
# 50 %): two full runs failed R1.2.
JOBS_PER_SECOND = 2.0
ITERATIONS = "150000"
# A faster CPU does a job in less time: on a machine where 2 jobs/s kept engine-worker
# under its target, it never scaled (a cold CI run failed so, with every job done). While
# it has not scaled out and its autoscaler reads it under target, the job rate doubles,
# RAISE_AFTER_S after the last change (time for the autoscaler's CPU reading to follow),
# up to MAX_JOBS_PER_SECOND. Never above target: engine-api keeps its share of the CPU.
RAISE_AFTER_S = 45
MAX_JOBS_PER_SECOND = 16.0
# Closed loop: as many requests as 8 keep-alive clients get answered.
REQUESTS = {"CONCURRENCY": "8", "RATE": "0", "MAX_REQUESTS": "10000000", "STOP_FILE": "/tmp/stop"}
MAX_ERROR_RATIO = 0.01
MAX_LOAD_S = 300  # the load pods' own limit; the scenario stops them once both scaled out
KEEP_LOADING_AFTER_SCALE_OUT_S = 20
JOBS_DONE_WITHIN_S = 300


@dataclass
class Scaled:
    """One autoscaled workload: its bounds and what it did under the load."""

    name: str
    minimum: int
    maximum: int
    peak: int = 0
    scaled_out_after: float = 0.0


@dataclass
class Load:
    namespace: str
    jobs_pod: str
    requests_pod: str
    started: float
    scaled: dict[str, Scaled]
    stopped: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    job_rate: float = JOBS_PER_SECOND
    rate_since: float = 0.0  # when job_rate was last set (time.time())
    raises: list[str] = field(default_factory=list)  # each raise, as the report shows it


def ready_pods(kube: Kube, namespace: str, app: str) -> int:
    """Ready pods of ``app`` that are not on their way out."""
    pods = kube.core.list_namespaced_pod(
        namespace, label_selector=f"app.kubernetes.io/name={app}"
    ).items
    return sum(1 for pod in pods if pod.metadata.deletion_timestamp is None and is_ready(pod))


def at_rest(kube: Kube, namespace: str, scaled: Scaled) -> bool:
    """At its minimum, and its autoscaler reading CPU: after a node was powered off (R3.2,
    R1.3) metrics-server restarts and an autoscaler without metrics cannot act (a full run
    failed so: engine-api never scaled while its HorizontalPodAutoscaler had no metrics)."""
    hpa = kube.autoscaling.read_namespaced_horizontal_pod_autoscaler(scaled.name, namespace)
    conditions = {c.type: c.status for c in (hpa.status.conditions or [])}
    return (
        conditions.get("ScalingActive") == "True"
        and bool(hpa.status.current_metrics)
        and kube.wanted_replicas(namespace, scaled.name) == scaled.minimum
        and ready_pods(kube, namespace, scaled.name) == scaled.minimum
    )


@when("requests and CPU-heavy jobs keep arriving", target_fixture="load")
def _(kube: Kube, environment: Environment, toolbox_image: str) -> Load:
    namespace = environment.namespace
    scaled = {}
    for name in SCALED:
        try:
            hpa = kube.autoscaling.read_namespaced_horizontal_pod_autoscaler(name, namespace)
        except ApiException as error:
            assert error.status != 404, f"{name} has no HorizontalPodAutoscaler in {namespace}"
            raise
        scaled[name] = Scaled(name, int(hpa.spec.min_replicas or 1), int(hpa.spec.max_replicas))
    # Start from rest, so a scale-out below is caused by this load.
    wait_until(
        lambda: all(at_rest(kube, namespace, s) for s in scaled.values()),
        timeout=360,
        interval=1,
        describe="engine-api and engine-worker at their minimum replicas, their autoscalers "
        "reading CPU, before the load",
    )
    run = uuid.uuid4().hex[:6]
    jobs = {
        "URL": f"{environment.api_url}/v1/jobs",
        "TOKEN": environment.token("writer"),
        "RATE": str(JOBS_PER_SECOND),
        "DURATION": str(MAX_LOAD_S),
        "ITERATIONS": ITERATIONS,
        "RUN": f"jobs-{run}",
        "ADMIT": api_addresses(kube, environment),
    }
    requests = {
        **REQUESTS,
        "URL": f"{environment.api_url}/v1/sessions",
        "TOKEN": environment.token("reader"),
        "DURATION": str(MAX_LOAD_S),
        "ADMIT": api_addresses(kube, environment),
    }
    for pod, script, env in (
        (f"jobs-{run}", "job_load.py", jobs),
        (f"requests-{run}", "http_load.py", requests),
    ):
        manifest = workloads.script_pod(pod, script, env, toolbox_image, MAX_LOAD_S + 300)
        kube.create(environment.client_namespace, manifest)
    log.info(
        "   %s: 8 clients and %g CPU-heavy jobs/s started; waiting for %s to scale out",
        namespace,
        JOBS_PER_SECOND,
        ", ".join(f"{s.name} ({s.minimum}-{s.maximum})" for s in scaled.values()),
    )
    now = time.time()
    return Load(
        environment.client_namespace, f"jobs-{run}", f"requests-{run}", now, scaled, rate_since=now
    )


def cpu_against_target(kube: Kube, namespace: str, name: str) -> tuple[int | None, int]:
    """The autoscaler's own reading of its workload's CPU, and its target, in percent of
    the pods' request (None before it has a reading)."""
    hpa = kube.autoscaling.read_namespaced_horizontal_pod_autoscaler(name, namespace)
    target = int(hpa.spec.metrics[0].resource.target.average_utilization)
    readings = [
        metric.resource.current.average_utilization
        for metric in hpa.status.current_metrics or []
        if metric.resource is not None and metric.resource.name == "cpu"
    ]
    return (int(readings[0]) if readings and readings[0] is not None else None), target


def raise_jobs_while_under_target(kube: Kube, environment: Environment, load: Load) -> None:
    """Double the job rate when engine-worker has not scaled out and its autoscaler reads
    its CPU under target: the load must be one that calls for more workers."""
    worker = load.scaled["engine-worker"]
    now = time.time()
    if (
        worker.scaled_out_after
        or load.job_rate >= MAX_JOBS_PER_SECOND
        or now - load.rate_since < RAISE_AFTER_S
    ):
        return
    reading, target = cpu_against_target(kube, environment.namespace, worker.name)
    if reading is None or reading >= target:
        return
    rate = min(load.job_rate * 2, MAX_JOBS_PER_SECOND)
    command = f"echo {rate} > /tmp/rate.new && mv /tmp/rate.new /tmp/rate"
    code, output = kube.exec(load.namespace, load.jobs_pod, ["sh", "-c", command])
    assert code == 0, f"could not raise the job rate in {load.jobs_pod}: {output}"
    load.raises.append(
        f"{now - load.started:.0f} s: {load.job_rate:g} to {rate:g} jobs/s "
        f"(engine-worker CPU {reading} % of its request, target {target} %)"
    )
    log.info("   %s", load.raises[-1])
    load.job_rate, load.rate_since = rate, now


def watch_peaks(kube: Kube, environment: Environment, load: Load) -> None:
    """Note each workload's Ready pods: the first time above its minimum, and its peak."""
    for scaled in load.scaled.values():
        ready = ready_pods(kube, environment.namespace, scaled.name)
        scaled.peak = max(scaled.peak, ready)
        if ready > scaled.minimum and not scaled.scaled_out_after:
            scaled.scaled_out_after = round(time.time() - load.started, 1)
            log.info("   %s: a new Ready pod after %.1f s", scaled.name, scaled.scaled_out_after)


@then(parsers.parse("engine-api and engine-worker scale out within {minutes:d} minutes"))
def _(
    kube: Kube, environment: Environment, load: Load, minutes: int, record_figure: RecordFigure
) -> None:
    def all_scaled_out() -> bool:
        watch_peaks(kube, environment, load)
        raise_jobs_while_under_target(kube, environment, load)
        return all(scaled.scaled_out_after for scaled in load.scaled.values())

    try:
        wait_until(
            all_scaled_out,
            timeout=minutes * 60 - (time.time() - load.started),
            interval=1,
            describe="more Ready engine-api and engine-worker pods than their minimum",
        )
    finally:
        for scaled in load.scaled.values():
            record_figure(f"{scaled.name}_seconds_to_first_new_ready_pod", scaled.scaled_out_after)
        record_figure("jobs_per_second", load.job_rate)
        record_figure("job_rate_raised", "; ".join(load.raises) or "never")


@when("the load stops")
def _(kube: Kube, environment: Environment, load: Load, record_figure: RecordFigure) -> None:
    """Keep the load until both reach their maximum, or a little past the last scale-out
    (to see the peaks); then stop it. The job submitter then waits for every job it got
    accepted to be done."""

    def at_maximum() -> bool:
        watch_peaks(kube, environment, load)
        return all(scaled.peak >= scaled.maximum for scaled in load.scaled.values())

    with contextlib.suppress(WaitTimeout):
        wait_until(
            at_maximum,
            timeout=KEEP_LOADING_AFTER_SCALE_OUT_S,
            interval=1,
            describe="the peak number of Ready pods",
        )
    for pod in (load.jobs_pod, load.requests_pod):
        code, output = kube.exec(load.namespace, pod, ["touch", "/tmp/stop"])
        assert code == 0, f"could not stop the load in {pod}: {output}"
    load.stopped = time.time()
    log.info(
        "   load stopped (peaks: %s); waiting for every accepted job to be done",
        ", ".join(f"{s.name} {s.peak}/{s.maximum}" for s in load.scaled.values()),
    )
    requests = kube.summary_of(load.namespace, load.requests_pod, timeout=60)
    load.summary = kube.summary_of(load.namespace, load.jobs_pod, timeout=JOBS_DONE_WITHIN_S)
    for scaled in load.scaled.values():
        record_figure(f"{scaled.name}_peak_ready_pods", scaled.peak)
        record_figure(f"{scaled.name}_max_replicas", scaled.maximum)
    record_figure("requests_answered", requests["requests"])
    record_figure("requests_per_second", requests["rps"])
    record_figure("requests_failed", requests["errors"])
    record_figure("request_errors", requests["error_kinds"])
    record_figure("jobs_submitted", load.summary["submitted"])
    record_figure("job_submissions_failed", load.summary["errors"])
    record_figure("job_submission_errors", load.summary["error_kinds"])
    record_figure("seconds_of_load", load.summary["submitting_s"])
    record_figure(
        "seconds_until_network_policy_admitted_the_new_client", load.summary["admitted_after_s"]
    )
    sent = requests["requests"] + requests["errors"]
    assert requests["errors"] <= MAX_ERROR_RATIO * sent, (
        f"the API failed requests under load: {requests}"
    )
    sent = load.summary["submitted"] + load.summary["errors"]
    assert load.summary["errors"] <= MAX_ERROR_RATIO * sent, (
        f"the API refused or dropped jobs under load: {load.summary}"
    )


@then("every job submitted was done exactly once")
def _(kube: Kube, environment: Environment, load: Load, record_figure: RecordFigure) -> None:
    never_done = load.summary["never_done"]
    record_figure("jobs_never_done", len(never_done))
    assert load.summary["submitted"] > 0 and not never_done, (
        f"{len(never_done)} of {load.summary['submitted']} accepted jobs never done: "
        f"{never_done[:10]}"
    )
    # Exactly once: the worker logs "job done" only once the job's result is committed.
    wanted = {str(job_id) for job_id in load.summary["job_ids"]}

    def completions() -> dict[str, int] | None:
        lines = LogStore(kube.api).query(
            f'_msg:"job done" AND kubernetes.pod_namespace:"{environment.namespace}" '
            f'AND request_id:"{load.jobs_pod}-"*',
            limit=10 * len(wanted),
        )
        counted = Counter(str(line.get("job_id")) for line in lines)
        return counted if wanted <= set(counted) else None

    counted, _ = wait_until(completions, timeout=60, interval=2, describe="every job's log line")
    twice = {job: n for job, n in counted.items() if n > 1}
    record_figure("jobs_done_more_than_once", len(twice))
    assert not twice, f"jobs done more than once: {twice}"


@then(parsers.parse("engine-api and engine-worker scale back in within {minutes:d} minutes"))
def _(
    kube: Kube, environment: Environment, load: Load, minutes: int, record_figure: RecordFigure
) -> None:
    back: dict[str, float] = {}

    def all_back() -> bool:
        for scaled in load.scaled.values():
            wanted = kube.wanted_replicas(environment.namespace, scaled.name)
            if scaled.name not in back and wanted == scaled.minimum:
                back[scaled.name] = round(time.time() - load.stopped, 1)
                log.info("   %s back at %d replicas", scaled.name, scaled.minimum)
        return len(back) == len(load.scaled)

    try:
        wait_until(
            all_back,
            timeout=minutes * 60 - (time.time() - load.stopped),
            interval=1,
            describe="engine-api and engine-worker back at their minimum replicas",
        )
    finally:
        for name, seconds in back.items():
            record_figure(f"{name}_seconds_to_scale_in_after_load", seconds)
