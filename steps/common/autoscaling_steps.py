"""Steps that load the engine's job queue and watch the HorizontalPodAutoscaler act."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from pytest_bdd import parsers, then, when

from deployer.lower.waiting import wait_until
from steps.support import workloads
from steps.support.environments import Environment
from steps.support.kube import Kube
from steps.support.report import RecordFigure

WORKER = "engine-worker"
JOBS_PER_SECOND = "4"
ITERATIONS = "150000"  # about a quarter of a CPU second per job: 4/s is a core's worth of work
MAX_SUBMIT_ERROR_RATIO = 0.01


@dataclass
class JobLoad:
    namespace: str
    pod: str
    started: float
    duration_s: int
    min_replicas: int
    peak_replicas: int = 0
    summary: dict[str, Any] = field(default_factory=dict)


def ready_workers(kube: Kube, namespace: str) -> int:
    status = kube.apps.read_namespaced_deployment(WORKER, namespace).status
    return int(status.ready_replicas or 0)


@when(parsers.parse("CPU-heavy jobs keep arriving for {minutes:d} minutes"), target_fixture="load")
def _(kube: Kube, environment: Environment, toolbox_image: str, minutes: int) -> JobLoad:
    hpa = kube.autoscaling.read_namespaced_horizontal_pod_autoscaler(WORKER, environment.namespace)
    minimum = int(hpa.spec.min_replicas or 1)
    # Start from rest, so a scale-out below is caused by this load.
    wait_until(
        lambda: ready_workers(kube, environment.namespace) == minimum,
        timeout=360,
        interval=5,
        describe=f"{WORKER} at its minimum of {minimum} replicas before the load",
    )
    name = f"jobs-{uuid.uuid4().hex[:6]}"
    env = {
        "URL": f"{environment.api_url}/v1/jobs",
        "TOKEN": environment.token("writer"),
        "RATE": JOBS_PER_SECOND,
        "DURATION": str(minutes * 60),
        "ITERATIONS": ITERATIONS,
    }
    pod = workloads.script_pod(name, "job_load.py", env, toolbox_image, minutes * 60 + 60)
    kube.create(environment.client_namespace, pod)
    return JobLoad(environment.client_namespace, name, time.time(), minutes * 60, minimum)


@then(parsers.parse("the engine-worker deployment scales out within {minutes:d} minutes"))
def _(
    kube: Kube, environment: Environment, load: JobLoad, minutes: int, record_figure: RecordFigure
) -> None:
    wait_until(
        lambda: ready_workers(kube, environment.namespace) > load.min_replicas,
        timeout=minutes * 60 - (time.time() - load.started),
        interval=3,
        describe=f"more than {load.min_replicas} Ready {WORKER} replicas",
    )
    record_figure("seconds_to_scale_out", round(time.time() - load.started, 1))


@when("the jobs stop")
def _(kube: Kube, environment: Environment, load: JobLoad, record_figure: RecordFigure) -> None:
    def load_finished() -> bool:
        load.peak_replicas = max(load.peak_replicas, ready_workers(kube, environment.namespace))
        phase = kube.core.read_namespaced_pod(load.pod, load.namespace).status.phase
        return phase in ("Succeeded", "Failed")

    wait_until(load_finished, timeout=load.duration_s + 120, interval=3, describe="the job load")
    load.summary = kube.summary_of(load.namespace, load.pod, timeout=30)
    record_figure("jobs_submitted", load.summary["submitted"])
    record_figure("job_submissions_failed", load.summary["errors"])
    record_figure("job_submission_errors", load.summary["error_kinds"])
    record_figure(
        "seconds_until_network_policy_admitted_the_new_client", load.summary["admitted_after_s"]
    )
    record_figure("peak_ready_workers", load.peak_replicas)
    sent = load.summary["submitted"] + load.summary["errors"]
    assert load.summary["errors"] <= MAX_SUBMIT_ERROR_RATIO * sent, (
        f"the API refused or dropped jobs under load: {load.summary}"
    )


@then(parsers.parse("the engine-worker deployment scales back in within {minutes:d} minutes"))
def _(
    kube: Kube, environment: Environment, load: JobLoad, minutes: int, record_figure: RecordFigure
) -> None:
    stopped = time.time()
    wait_until(
        lambda: (
            kube.apps.read_namespaced_deployment(WORKER, environment.namespace).spec.replicas
            == load.min_replicas
        ),
        timeout=minutes * 60,
        interval=5,
        describe=f"{WORKER} back at {load.min_replicas} replicas",
    )
    record_figure("seconds_to_scale_in_after_load", round(time.time() - stopped, 1))
