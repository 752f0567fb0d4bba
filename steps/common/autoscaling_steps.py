"""Steps that load the engine's job queue and watch the HorizontalPodAutoscaler act."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pytest_bdd import parsers, then, when

from deployer.lower.waiting import WaitTimeout, wait_until
from steps.support import workloads
from steps.support.environments import Environment, api_addresses
from steps.support.kube import Kube
from steps.support.monitoring import LogStore
from steps.support.report import RecordFigure

WORKER = "engine-worker"
JOBS_PER_SECOND = "4"
ITERATIONS = "150000"  # about a quarter of a CPU second per job: 4/s is a core's worth of work
MAX_SUBMIT_ERROR_RATIO = 0.01
MAX_LOAD_S = 300  # the submitter's own limit; the scenario stops it once the worker scaled out
KEEP_LOADING_AFTER_SCALE_OUT_S = 20
JOBS_DONE_WITHIN_S = 300


@dataclass
class JobLoad:
    namespace: str
    pod: str
    started: float
    min_replicas: int
    max_replicas: int
    peak_replicas: int = 0
    stopped: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)


def ready_workers(kube: Kube, namespace: str) -> int:
    status = kube.apps.read_namespaced_deployment(WORKER, namespace).status
    return int(status.ready_replicas or 0)


@when("CPU-heavy jobs keep arriving", target_fixture="load")
def _(kube: Kube, environment: Environment, toolbox_image: str) -> JobLoad:
    hpa = kube.autoscaling.read_namespaced_horizontal_pod_autoscaler(WORKER, environment.namespace)
    minimum, maximum = int(hpa.spec.min_replicas or 1), int(hpa.spec.max_replicas)
    # Start from rest, so a scale-out below is caused by this load.
    wait_until(
        lambda: ready_workers(kube, environment.namespace) == minimum,
        timeout=360,
        interval=1,
        describe=f"{WORKER} at its minimum of {minimum} replicas before the load",
    )
    name = f"jobs-{uuid.uuid4().hex[:6]}"
    env = {
        "URL": f"{environment.api_url}/v1/jobs",
        "TOKEN": environment.token("writer"),
        "RATE": JOBS_PER_SECOND,
        "DURATION": str(MAX_LOAD_S),
        "ITERATIONS": ITERATIONS,
        "RUN": name,
        "ADMIT": api_addresses(kube, environment),
    }
    pod = workloads.script_pod(name, "job_load.py", env, toolbox_image, MAX_LOAD_S + 300)
    kube.create(environment.client_namespace, pod)
    return JobLoad(environment.client_namespace, name, time.time(), minimum, maximum)


@then(parsers.parse("the engine-worker deployment scales out within {minutes:d} minutes"))
def _(
    kube: Kube, environment: Environment, load: JobLoad, minutes: int, record_figure: RecordFigure
) -> None:
    wait_until(
        lambda: ready_workers(kube, environment.namespace) > load.min_replicas,
        timeout=minutes * 60 - (time.time() - load.started),
        interval=1,
        describe=f"more than {load.min_replicas} Ready {WORKER} replicas",
    )
    record_figure("seconds_to_first_new_ready_worker", round(time.time() - load.started, 1))


@when("the jobs stop")
def _(kube: Kube, environment: Environment, load: JobLoad, record_figure: RecordFigure) -> None:
    """Keep the load until the maximum is reached, or a little past the first new worker
    (to see the peak); then stop it. The submitter then waits for every job it got
    accepted to be done."""

    def at_maximum() -> bool:
        load.peak_replicas = max(load.peak_replicas, ready_workers(kube, environment.namespace))
        return load.peak_replicas >= load.max_replicas

    with contextlib.suppress(WaitTimeout):
        wait_until(
            at_maximum,
            timeout=KEEP_LOADING_AFTER_SCALE_OUT_S,
            interval=1,
            describe="the peak number of Ready workers",
        )
    code, output = kube.exec(load.namespace, load.pod, ["touch", "/tmp/stop"])
    assert code == 0, f"could not stop the job load: {output}"
    load.stopped = time.time()
    load.summary = kube.summary_of(load.namespace, load.pod, timeout=JOBS_DONE_WITHIN_S)
    record_figure("jobs_submitted", load.summary["submitted"])
    record_figure("job_submissions_failed", load.summary["errors"])
    record_figure("job_submission_errors", load.summary["error_kinds"])
    record_figure("seconds_of_load", load.summary["submitting_s"])
    record_figure(
        "seconds_until_network_policy_admitted_the_new_client", load.summary["admitted_after_s"]
    )
    record_figure("peak_ready_workers", load.peak_replicas)
    record_figure("max_workers", load.max_replicas)
    sent = load.summary["submitted"] + load.summary["errors"]
    assert load.summary["errors"] <= MAX_SUBMIT_ERROR_RATIO * sent, (
        f"the API refused or dropped jobs under load: {load.summary}"
    )


@then("every job submitted was done exactly once")
def _(kube: Kube, environment: Environment, load: JobLoad, record_figure: RecordFigure) -> None:
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
            f'AND request_id:"{load.pod}-"*',
            limit=10 * len(wanted),
        )
        counted = Counter(str(line.get("job_id")) for line in lines)
        return counted if wanted <= set(counted) else None

    counted, _ = wait_until(completions, timeout=60, interval=2, describe="every job's log line")
    twice = {job: n for job, n in counted.items() if n > 1}
    record_figure("jobs_done_more_than_once", len(twice))
    assert not twice, f"jobs done more than once: {twice}"


@then(parsers.parse("the engine-worker deployment scales back in within {minutes:d} minutes"))
def _(
    kube: Kube, environment: Environment, load: JobLoad, minutes: int, record_figure: RecordFigure
) -> None:
    stopped = load.stopped
    wait_until(
        lambda: (
            kube.apps.read_namespaced_deployment(WORKER, environment.namespace).spec.replicas
            == load.min_replicas
        ),
        timeout=minutes * 60 - (time.time() - stopped),
        interval=1,
        describe=f"{WORKER} back at {load.min_replicas} replicas",
    )
    record_figure("seconds_to_scale_in_after_load", round(time.time() - stopped, 1))
