"""Steps that roll a new engine version through a live environment under traffic."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pytest_bdd import given, parsers, then, when

from deployer.actions.engine_images import EngineImages
from deployer.lower.waiting import wait_until
from steps.common.workload_steps import Traffic
from steps.support import clients, faults, releases, workloads
from steps.support.clients import EngineClients
from steps.support.environments import (
    Environment,
    Environments,
    Rollout,
    api_addresses,
    api_call,
)
from steps.support.kube import Kube, is_ready
from steps.support.report import RecordFigure

API_SELECTOR = "app.kubernetes.io/name=engine-api"
# Keep watching after the last rollout: old pods drain (15 s) after it "completes".
OBSERVE_AFTER_ROLLOUT_S = 20.0
MAX_CYCLES = 4  # rollout and rollback pairs: 5,000 requests even at 25 a second
MIN_REQUESTS_DURING_ROLLOUTS = 100  # below this, "zero failures" would say little
INFO_ASKS = 8

# A late answer is not downtime, so the traffic client waits this long for one.
TRAFFIC_TIMEOUT_S = 10


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
            timeout_s=TRAFFIC_TIMEOUT_S,
            admit=api_addresses(kube, environment),
        ),
    )
    kube.wait_pods_ready(environment.client_namespace, [name], timeout=120)
    traffic = Traffic(environment.client_namespace, name, time.time())
    # Control: the client is answered before anything changes, so zero failures means something.
    wait_until(
        lambda: any(r["ok"] for r in traffic.requests(kube)),
        timeout=180,  # every engine-api pod's node admits it first (up to 120 s)
        interval=1,
        describe="the client's first successful request",
    )
    return traffic


@given(
    "the engine's next release, which migrates the database, is built and on the nodes",
    target_fixture="candidate",
)
def _(environments: Environments, environment: Environment) -> EngineImages:
    """Before the clients start: building and loading it is not part of the rollout."""
    candidate = environments.build_next_release()
    assert candidate.api != environment.images.api, "the candidate has the current tag"
    assert candidate.worker != environment.images.worker, "the candidate has the current tag"
    return candidate


@when("the new engine version is deployed", target_fixture="rollouts")
def _(
    environments: Environments, environment: Environment, candidate: EngineImages
) -> list[Rollout]:
    return [environments.roll_out(environment, candidate)]


@when("the previous engine version is deployed again")
def _(environments: Environments, environment: Environment, rollouts: list[Rollout]) -> None:
    rollouts.append(environments.roll_out(environment, environment.images))


@when(
    parsers.parse(
        "the new version and then the previous one are deployed again while fewer than "
        "{count:d} requests were sent during the rollouts"
    )
)
def _(
    kube: Kube,
    environments: Environments,
    environment: Environment,
    candidate: EngineImages,
    rollouts: list[Rollout],
    engine_clients: EngineClients,
    count: int,
    record_figure: RecordFigure,
) -> None:
    """More cycles while the clients' sample is short of ``count``: one cycle got about
    3,400 requests on a machine where they held both cores (35 a second), about 8,000 on
    one three times as fast. Counted as the final check counts, once the last rollout's
    drain window is over (that check waits for it anyway)."""

    def sample() -> int:
        drained = rollouts[-1].finished + OBSERVE_AFTER_ROLLOUT_S
        engine_clients.answered_since(kube, drained, timeout=90)
        return len(during_rollouts(engine_clients.requests(kube), rollouts))

    cycle = 1
    while sample() < count:
        assert cycle < MAX_CYCLES, f"{count} requests not reached in {MAX_CYCLES} cycles"
        cycle += 1
        for which, images in (("new", candidate), ("previous", environment.images)):
            rollouts.append(environments.roll_out(environment, images))
            assert_rolled_out(kube, environment, rollouts[-1])
            record_figure(f"seconds_to_roll_out_{which}_version_{cycle}", rollouts[-1].seconds)
    record_figure("rollout_cycles", cycle)


@then(parsers.parse("the rollout completes with every pod on the {which} version"))
def _(
    kube: Kube,
    environment: Environment,
    rollouts: list[Rollout],
    which: str,
    record_figure: RecordFigure,
) -> None:
    assert_rolled_out(kube, environment, rollouts[-1])
    record_figure(f"seconds_to_roll_out_{which}_version", rollouts[-1].seconds)


def assert_rolled_out(kube: Kube, environment: Environment, rollout: Rollout) -> None:
    """Every serving pod of both workloads runs the rollout's image, and all are Ready."""
    for app, image in (
        ("engine-api", rollout.images.api),
        ("engine-worker", rollout.images.worker),
    ):
        wanted = kube.wanted_replicas(environment.namespace, app)
        pods = kube.core.list_namespaced_pod(
            environment.namespace, label_selector=f"app.kubernetes.io/name={app}"
        ).items
        serving = [pod for pod in pods if pod.metadata.deletion_timestamp is None]
        images = sorted({pod.spec.containers[0].image for pod in serving})
        assert images == [image], f"{app} pods run {images}, expected {image}"
        ready = [pod.metadata.name for pod in serving if is_ready(pod)]
        assert len(ready) == wanted, f"{len(ready)} of {wanted} {app} pods Ready: {ready}"


@then(parsers.parse("the engine API says it runs the {which} version"))
def _(kube: Kube, environment: Environment, rollouts: list[Rollout], which: str) -> None:
    """Asked through the Service several times once the previous version's pods are gone
    (they finish their in-flight requests first): then no pod may answer otherwise."""
    wanted = rollouts[-1].images.revision
    reader = environment.token("reader")

    def leaving() -> list[str]:
        pods = kube.core.list_namespaced_pod(environment.namespace, label_selector=API_SELECTOR)
        return [p.metadata.name for p in pods.items if p.metadata.deletion_timestamp]

    wait_until(
        lambda: not leaving(),
        timeout=90,
        interval=1,
        describe="the previous version's engine-api pods to finish draining",
    )
    answers = [api_call(kube, environment, "GET", "/info", reader) for _ in range(INFO_ASKS)]
    revisions = [a.body["config"]["revision"] if a.status == 200 else a for a in answers]
    assert all(r == wanted for r in revisions), f"/info answered {revisions}, expected {wanted}"


@then(
    "the new version's migration is applied: a session it creates keeps the ID of its request",
    target_fixture="migrated_session",
)
def _(kube: Kube, environment: Environment) -> tuple[int, str]:
    """The new code wrote and read the new column: the release really is a new version."""
    column = releases.NEW_COLUMN
    assert column in session_columns(kube, environment), f"sessions has no column {column}"
    request_id = f"r1-4-{uuid.uuid4().hex[:12]}"
    title = f"written by the next release {uuid.uuid4()}"
    writer = environment.token("writer")
    created = api_call(
        kube,
        environment,
        "POST",
        "/v1/sessions",
        writer,
        {"title": title},
        curl_args=("-H", f"X-Request-ID: {request_id}"),
    )
    assert created.status == 201, f"the new version refused a session: {created}"
    read = api_call(kube, environment, "GET", f"/v1/sessions/{created.body['id']}", writer)
    assert read.status == 200 and read.body.get(column) == request_id, (
        f"the new version did not keep the request's ID in {column}: {read}"
    )
    return int(created.body["id"]), title


@then(
    "the previous version works on the migrated schema: it reads what the new one wrote "
    "and writes again"
)
def _(kube: Kube, environment: Environment, migrated_session: tuple[int, str]) -> None:
    """Rolling code back does not roll the schema back (expand/contract): the column
    stays, and the previous code must neither trip on it nor need it."""
    column = releases.NEW_COLUMN
    assert column in session_columns(kube, environment), f"the {column} column is gone"
    session_id, title = migrated_session
    writer = environment.token("writer")
    read = api_call(kube, environment, "GET", f"/v1/sessions/{session_id}", writer)
    assert read.status == 200 and read.body["title"] == title, (
        f"the previous version could not read the session the new one wrote: {read}"
    )
    assert column not in read.body, f"a previous-version pod still answers with {column}"
    written = api_call(
        kube, environment, "POST", "/v1/sessions", writer, {"title": "written after rollback"}
    )
    assert written.status == 201, f"the previous version cannot write on the new schema: {written}"


def session_columns(kube: Kube, environment: Environment) -> list[str]:
    """The columns of the sessions table, from the database itself."""
    out = faults.psql(
        kube,
        environment,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'sessions'",
        faults.database_name(environment),
    )
    return out.split()


@then(parsers.parse("none of at least {count:d} requests failed during the rollouts"))
def _(
    kube: Kube,
    environment: Environment,
    engine_clients: EngineClients,
    rollouts: list[Rollout],
    count: int,
    record_figure: RecordFigure,
) -> None:
    window_end = rollouts[-1].finished + OBSERVE_AFTER_ROLLOUT_S
    engine_clients.answered_since(kube, window_end, timeout=90)  # observed past the window
    engine_clients.keep_log(kube)
    during, failed = within_rollouts(engine_clients.requests(kube), rollouts, record_figure)
    record_figure("writes_during_rollouts", sum(1 for r in during if r["op"] != "read"))
    if failed:
        listed = "; ".join(
            f"{clients.clock(r['t'])} {r['op']} after {r['ms']} ms: {r['detail']}"
            for r in failed[:5]
        )
        near = pod_events_near(kube, environment, failed[0]["t"])
        raise AssertionError(
            f"{len(failed)} of {len(during)} requests failed during the rollouts: {listed}. "
            f"engine-api pods around the first: {near}"
        )
    assert len(during) >= count, f"only {len(during)} requests were sent during the rollouts"


def pod_events_near(kube: Kube, environment: Environment, moment: float) -> list[str]:
    """What happened to engine-api pods from 30 s before to 5 s after ``moment`` (pod
    events: scheduled, started, killing, probe failures), to tell a stale route to a pod
    that is gone from a pod that stalled."""
    seen = []
    for event in kube.core.list_namespaced_event(environment.namespace).items:
        name = event.involved_object.name or ""
        stamp = event.last_timestamp or event.event_time or event.first_timestamp
        if not name.startswith("engine-api-") or stamp is None:
            continue
        if moment - 30 <= stamp.timestamp() <= moment + 5:
            seen.append(
                (stamp.timestamp(), f"{clients.clock(stamp.timestamp())} {name} {event.reason}")
            )
    return [line for _, line in sorted(seen)]


def within_rollouts(
    logged: list[dict[str, Any]], rollouts: list[Rollout], record_figure: RecordFigure
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The requests sent while a rollout ran or its old pods drained (from its start
    until OBSERVE_AFTER_ROLLOUT_S after it), and those of them that failed; their
    figures go in the report. The checks between rollouts do not count."""
    during = during_rollouts(logged, rollouts)
    failed = [r for r in during if not r["ok"]]
    covered = covered_seconds(rollout_windows(rollouts))
    record_figure("rollouts_under_traffic", len(rollouts))
    record_figure("requests_during_rollouts", len(during))
    record_figure("requests_per_second_during_rollouts", round(len(during) / max(covered, 1.0), 1))
    record_figure("failed_requests_during_rollouts", len(failed))
    record_figure("slowest_request_during_rollouts_ms", max((r["ms"] for r in during), default=0))
    return during, failed


def rollout_windows(rollouts: list[Rollout]) -> list[tuple[float, float]]:
    return [(r.started, r.finished + OBSERVE_AFTER_ROLLOUT_S) for r in rollouts]


def during_rollouts(logged: list[dict[str, Any]], rollouts: list[Rollout]) -> list[dict[str, Any]]:
    """The requests sent while a rollout ran or its old pods drained."""
    windows = rollout_windows(rollouts)
    return [r for r in logged if any(start <= r["t"] <= end for start, end in windows)]


def covered_seconds(windows: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of ``windows``: a rollout that starts while the one
    before still drains must not count that time twice."""
    total, reached = 0.0, float("-inf")
    for start, end in sorted(windows):
        total += max(0.0, end - max(start, reached))
        reached = max(reached, end)
    return total


@then("no request failed while the certificates were rolled in")
def _(kube: Kube, traffic: Traffic, rollouts: list[Rollout], record_figure: RecordFigure) -> None:
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
    during, failed = within_rollouts(logged, rollouts, record_figure)
    assert len(during) >= MIN_REQUESTS_DURING_ROLLOUTS, (
        f"only {len(during)} requests were sent during the rollouts"
    )
    assert not failed, (
        f"{len(failed)} of {len(during)} requests failed during the rollouts: "
        f"{[r['detail'] for r in failed[:5]]}"
    )
