"""Steps that roll a new engine version through a live environment under traffic."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pytest_bdd import given, parsers, then, when

from deployer.lower.waiting import wait_until
from steps.common.workload_steps import Traffic
from steps.support import workloads
from steps.support.environments import Environment, Environments, Rollout
from steps.support.kube import Kube, is_ready
from steps.support.report import RecordFigure

API_SELECTOR = "app.kubernetes.io/name=engine-api"
# Keep watching after the last rollout: old pods drain for several seconds after it "completes".
OBSERVE_AFTER_ROLLOUT_S = 15.0
MIN_REQUESTS_DURING_ROLLOUTS = 100  # below this, "zero failures" would say little


@given("a client pod sending requests to the engine API", target_fixture="traffic")
def _(kube: Kube, environment: Environment, toolbox_image: str) -> Traffic:
    name = f"traffic-{uuid.uuid4().hex[:6]}"
    kube.create(
        environment.client_namespace,
        workloads.traffic_pod(
            name,
            f"{environment.api_url}/v1/sessions",
            toolbox_image,
            interval_s=0.05,
            duration_s=600,
            count=12000,
            token=environment.token("reader"),
            # A late answer is not downtime: it is recorded as latency. A request to a
            # pod that is gone never gets an answer and still fails after 10 s.
            timeout_s=10,
        ),
    )
    kube.wait_pods_ready(environment.client_namespace, [name], timeout=120)
    traffic = Traffic(environment.client_namespace, name, time.time())
    # Control: the client is answered before anything changes, so zero failures means something.
    wait_until(
        lambda: any(r["ok"] for r in traffic.requests(kube)),
        timeout=60,
        interval=1,
        describe="the client's first successful request",
    )
    return traffic


@when("a new engine-api version is deployed", target_fixture="rollouts")
def _(environments: Environments, environment: Environment) -> list[Rollout]:
    candidate = environments.build_candidate("candidate")
    assert candidate.api != environment.images.api, "the candidate has the current tag"
    return [environments.roll_out(environment, candidate)]


@when("the previous engine-api version is deployed again")
def _(environments: Environments, environment: Environment, rollouts: list[Rollout]) -> None:
    rollouts.append(environments.roll_out(environment, environment.images))


@then(parsers.parse("the rollout completes with every pod on the {which} version"))
def _(
    kube: Kube,
    environment: Environment,
    rollouts: list[Rollout],
    which: str,
    record_figure: RecordFigure,
) -> None:
    rollout = rollouts[-1]
    wanted = kube.apps.read_namespaced_deployment("engine-api", environment.namespace).spec.replicas
    pods = kube.core.list_namespaced_pod(environment.namespace, label_selector=API_SELECTOR).items
    serving = [pod for pod in pods if pod.metadata.deletion_timestamp is None]
    images = sorted({pod.spec.containers[0].image for pod in serving})
    assert images == [rollout.images.api], f"pods run {images}, expected {rollout.images.api}"
    ready = [pod.metadata.name for pod in serving if is_ready(pod)]
    assert len(ready) == wanted, f"{len(ready)} of {wanted} engine-api pods Ready: {ready}"
    record_figure(f"seconds_to_roll_out_{which}_version", rollout.seconds)


@then("no request failed during either rollout")
@then("no request failed while the certificates were rolled in")
def _(kube: Kube, traffic: Traffic, rollouts: list[Rollout], record_figure: RecordFigure) -> None:
    window_start = rollouts[0].started
    window_end = rollouts[-1].finished + OBSERVE_AFTER_ROLLOUT_S

    def observed_past_window() -> list[dict[str, Any]]:
        logged = traffic.requests(kube)
        return logged if logged and logged[-1]["t"] >= window_end else []

    logged, _ = wait_until(
        observed_past_window,
        timeout=OBSERVE_AFTER_ROLLOUT_S + 60,
        interval=2,
        describe="the client to log requests past the end of the rollouts",
    )
    during = [r for r in logged if window_start <= r["t"] <= window_end]
    failed = [r for r in during if not r["ok"]]
    record_figure("requests_during_rollouts", len(during))
    record_figure("failed_requests_during_rollouts", len(failed))
    slowest = max((r["ms"] for r in during), default=0.0)
    record_figure("slowest_request_during_rollouts_ms", slowest)
    assert len(during) >= MIN_REQUESTS_DURING_ROLLOUTS, (
        f"only {len(during)} requests were sent during the rollouts"
    )
    assert not failed, (
        f"{len(failed)} of {len(during)} requests failed during the rollouts: "
        f"{[r['detail'] for r in failed[:5]]}"
    )
