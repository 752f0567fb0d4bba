"""Steps on the monitoring plane (R1.5, R3.1-R3.5): what Prometheus holds, what
Alertmanager delivers, what the log store finds, how old the data is.

Every check asks the running components (Prometheus' HTTP API, the alert
receiver, VictoriaLogs) through the Kubernetes API server's service proxy.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes.client.rest import ApiException
from pytest_bdd import given, parsers, then, when

from deployer.actions import capacity
from deployer.errors import ClusterError
from deployer.lower.prometheus import NAMESPACE, Prometheus
from deployer.lower.waiting import WaitTimeout, wait_until
from deployer.settings import Paths
from steps.support import browser, faults, workloads
from steps.support.environments import (
    Environment,
    Environments,
    api_addresses,
    api_call,
    serving_pods,
)
from steps.support.kube import Kube
from steps.support.monitoring import (
    ENGINE_WORKLOADS,
    AlertSink,
    Layer,
    LogStore,
    Notification,
    catalogue,
)
from steps.support.provider import NODE_POWER, ClusterProvider
from steps.support.report import RecordFigure, RecordLeftOut, evidence_dir

log = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def prometheus(kube: Kube) -> Prometheus:
    try:
        kube.core.read_namespace(NAMESPACE)
    except ApiException as error:
        if error.status == 404:
            pytest.skip("not applicable: the monitoring plane is not installed on this cluster")
        raise
    server = Prometheus(kube.api)
    wait_until(server.ready, timeout=120, interval=2, describe="Prometheus ready")
    return server


@pytest.fixture(scope="session")
def alert_sink(kube: Kube, prometheus: Prometheus) -> AlertSink:
    """The webhook receiver Alertmanager's configuration names (part of the monitoring plane)."""
    sink = AlertSink(kube.api)
    wait_until(sink.ready, timeout=120, interval=2, describe="the alert receiver answering")
    return sink


def expected_targets(kube: Kube, environment: Environment, layer: Layer) -> set[str]:
    """The names a layer's metric must exist for: nodes, or the workload's running pods."""
    if layer.per == "node":
        return {node.metadata.name for node in kube.core.list_node().items}
    if layer.per in ENGINE_WORKLOADS:
        return {pod.metadata.name for pod in serving_pods(kube, environment, layer.per)}
    return {"cluster"}


def selector(environment: Environment, layer: Layer) -> tuple[str, str]:
    """(PromQL label selector, the label that names a target) for one layer."""
    if layer.per in ENGINE_WORKLOADS:
        return f'{{namespace="{environment.namespace}", job="{layer.per}"}}', "pod"
    if layer.per == "node":
        return f'{{job="{layer.job}"}}', "node"
    return f'{{job="{layer.job}"}}', ""


@dataclass(frozen=True)
class MetricState:
    layer: str
    metric: str
    missing: tuple[str, ...]
    oldest_s: float
    limit_s: float


def metric_states(
    prometheus: Prometheus, kube: Kube, environment: Environment, layers: list[Layer]
) -> list[MetricState]:
    states = []
    for layer in layers:
        wanted = expected_targets(kube, environment, layer)
        labels, by = selector(environment, layer)
        for metric in layer.metrics:
            grouping = f"by ({by}) " if by else ""
            # Per target, the age of its newest series: series of a container or an
            # interface that went away linger until they go stale, and are not the target.
            ages = prometheus.query(f"min {grouping}(time() - timestamp({metric}{labels}))")
            seen = {
                sample.labels.get(by, "cluster") if by else "cluster": sample.value
                for sample in ages
            }
            states.append(
                MetricState(
                    layer=layer.name,
                    metric=metric,
                    missing=tuple(sorted(wanted - set(seen))),
                    oldest_s=max((seen[t] for t in wanted if t in seen), default=float("inf")),
                    limit_s=2 * layer.interval_s,
                )
            )
    return states


@when("the engine serves requests and finishes a job")
def _(kube: Kube, environment: Environment) -> None:
    """Counters and histograms exist once something happened; make it happen."""
    writer = environment.token("writer")
    for _ in range(5):
        assert api_call(kube, environment, "GET", "/v1/sessions", writer).status == 200
    submitted = api_call(
        kube, environment, "POST", "/v1/jobs", writer, {"input": "observe me", "iterations": 2}
    )
    assert submitted.status == 202, submitted
    job = submitted.body["id"]

    def done() -> bool:
        state = api_call(kube, environment, "GET", f"/v1/jobs/{job}", writer)
        return state.status == 200 and state.body["status"] == "done"

    wait_until(done, timeout=60, interval=1, describe=f"job {job} done")


@then("every scrape target is up, each layer of the catalogue among them")
def _(
    prometheus: Prometheus,
    kube: Kube,
    environment: Environment,
    paths: Paths,
    record_figure: RecordFigure,
) -> None:
    layers = catalogue(paths.repo)

    def all_up() -> list[dict[str, Any]] | None:
        targets = prometheus.targets()
        down = [t for t in targets if t["health"] != "up"]
        return None if down else targets

    try:
        targets, _ = wait_until(all_up, timeout=60, interval=3, describe="every target up")
    except WaitTimeout:
        down = [
            f"{t['labels'].get('job')} {t['scrapeUrl']}: {t['lastError']}"
            for t in prometheus.targets()
            if t["health"] != "up"
        ]
        pytest.fail(f"scrape targets down: {down}")
    jobs = {t["labels"].get("job") for t in targets}
    wanted_jobs = {layer.job or layer.per for layer in layers}
    assert wanted_jobs <= jobs, f"no scrape target for {sorted(wanted_jobs - jobs)}"
    for workload in ENGINE_WORKLOADS:
        pods = {p.metadata.name for p in serving_pods(kube, environment, workload)}
        scraped = {
            t["labels"].get("pod")
            for t in targets
            if t["labels"].get("job") == workload
            and t["labels"].get("namespace") == environment.namespace
        }
        assert pods <= scraped, f"{workload} pods not scraped: {sorted(pods - scraped)}"
    record_figure("scrape_targets_up", len(targets))
    record_figure("scrape_jobs", ", ".join(sorted(j for j in jobs if j)))


@then("every critical metric exists for each of its targets and is fresh")
def _(
    prometheus: Prometheus,
    kube: Kube,
    environment: Environment,
    paths: Paths,
    record_figure: RecordFigure,
) -> None:
    layers = catalogue(paths.repo)

    def complete() -> list[MetricState] | None:
        found = metric_states(prometheus, kube, environment, layers)
        return None if any(s.missing for s in found) else found

    # What just happened (the job) reaches Prometheus at the target's next scrape.
    try:
        states, _ = wait_until(complete, timeout=30, interval=5, describe="every critical series")
    except WaitTimeout:
        states = metric_states(prometheus, kube, environment, layers)
    missing = [f"{s.layer}/{s.metric} for {', '.join(s.missing)}" for s in states if s.missing]
    assert not missing, f"critical metrics missing: {missing}"
    stale = [
        f"{s.layer}/{s.metric} {s.oldest_s:.1f}s old (limit {s.limit_s:.0f}s)"
        for s in states
        if s.oldest_s > s.limit_s
    ]
    assert not stale, f"critical metrics stale: {stale}"
    record_figure("critical_metrics", len(states))
    record_figure("critical_layers", len(layers))
    record_figure("critical_metric_oldest_s", round(max(s.oldest_s for s in states), 1))


@given("the alert receiver is listening")
def _(alert_sink: AlertSink) -> None:
    alert_sink.notifications()  # answers through the proxy, or the step fails here


@then(parsers.parse("no alert fires and none reaches the receiver for {seconds:d} seconds"))
def _(
    prometheus: Prometheus, alert_sink: AlertSink, seconds: int, record_figure: RecordFigure
) -> None:
    """Earlier scenarios' faults (and rollouts) must have settled first; then the quiet
    window is watched whole: nothing may fire in Prometheus or reach the receiver."""

    def settled() -> bool:
        return not prometheus.alerts()

    try:
        _, waited = wait_until(settled, timeout=360, interval=3, describe="no alert active")
    except WaitTimeout:
        active = [(a["labels"], a["state"]) for a in prometheus.alerts()]
        pytest.fail(f"alerts still active on the stack before the quiet period: {active}")
    start = time.time()
    pending_seen: set[str] = set()
    while time.time() - start < seconds:
        alerts = prometheus.alerts()
        firing = [a["labels"]["alertname"] for a in alerts if a["state"] == "firing"]
        pending_seen |= {a["labels"]["alertname"] for a in alerts if a["state"] == "pending"}
        sent = [
            n.labels.get("alertname")
            for n in alert_sink.notifications()
            if n.received_at >= start and n.status == "firing"
        ]
        assert not firing and not sent, f"on a healthy stack: firing {firing}, sent {sent}"
        time.sleep(3)
    record_figure("quiet_period_s", seconds)
    record_figure("seconds_until_no_alert_active", round(waited, 1))
    record_figure("pending_during_quiet_period", ", ".join(sorted(pending_seen)) or "none")


def start_reader(
    kube: Kube, environment: Environment, image: str, rate: int, request: pytest.FixtureRequest
) -> str:
    """A bounded client reading sessions ``rate`` times a second (errors and latency need
    it); returns its pod's name."""
    name = f"reader-{uuid.uuid4().hex[:6]}"
    namespace = environment.client_namespace
    kube.create(
        namespace,
        workloads.traffic_pod(
            name,
            f"{environment.api_url}/v1/sessions",
            image,
            interval_s=1 / rate,
            duration_s=900,
            count=1_000_000,
            token=environment.token("reader"),
            timeout_s=3,
            admit=api_addresses(kube, environment),
        ),
    )
    request.addfinalizer(lambda: kube.delete_pod(namespace, name))
    kube.wait_pods_ready(namespace, [name], timeout=60)
    return name


def what_the_environment_saw(
    kube: Kube, prometheus: Prometheus, readers: dict[str, str], episode: Episode
) -> str:
    """Why an alert may not have come: what the environment's reader got since the fault,
    and what Prometheus holds for its namespace (a failed wait names its cause)."""
    environment = episode.environment
    try:
        log_text = kube.logs(environment.client_namespace, readers[environment.name])
        answers = [json.loads(line) for line in log_text.splitlines() if '"seq"' in line]
        recent = [a for a in answers if a["t"] >= episode.injected_at]
        failures = Counter(a["detail"][:80] for a in recent if not a["ok"])
        slow = sum(a["ms"] > 1000 for a in recent)
        reader = (
            f"{len(recent)} reads since the fault, {failures.total()} failed "
            f"{dict(failures.most_common(2))}, {slow} over 1 s"
        )
    except (ApiException, KeyError, ValueError) as error:
        reader = f"log unreadable ({error})"
    namespace = f'namespace="{environment.namespace}"'
    api = f'{namespace}, job="engine-api"'
    queries = {
        "p99_1m": f"engine:request_duration_seconds:p99_1m{{{namespace}}}",
        "rps_by_status": f"sum by (status) (rate(engine_http_requests_total{{{api}}}[1m]))",
        "alerts": f"ALERTS{{{namespace}}}",
    }
    held: dict[str, Any] = {}
    for label, expr in queries.items():
        try:
            held[label] = [
                (s.labels.get("status") or s.labels.get("alertname", ""), round(s.value, 3))
                for s in prometheus.query(expr)
            ]
        except ClusterError as error:
            held[label] = str(error)[:100]
    return f"{episode.fault.name} in {environment.name}: reader {reader}; Prometheus {held}"


FAULTS = {
    "crash-looping worker": lambda ctx: faults.crash_looping_worker(ctx.kube, ctx.environment),
    "engine-api down": lambda ctx: faults.scaled_away(
        ctx.kube, ctx.environment, "rollout", "engine-api"
    ),
    "Postgres down": lambda ctx: faults.scaled_away(
        ctx.kube, ctx.environment, "statefulset", "engine-postgres"
    ),
    "error burst": lambda ctx: faults.table_renamed(ctx.kube, ctx.environment),
    "latency spike": lambda ctx: faults.table_locked(ctx.kube, ctx.environment),
    "node lost": lambda ctx: faults.node_lost(ctx.kube, ctx.provider, ctx.environment, ctx.clients),
}
# What a fault needs from the cluster's provider beyond the Kubernetes API.
FAULT_NEEDS = {"node lost": NODE_POWER}


@dataclass
class FaultContext:
    kube: Kube
    environment: Environment
    provider: ClusterProvider
    clients: tuple[Environment, ...] = ()  # served again before a fault counts as removed


@dataclass
class Episode:
    """One fault in one environment, and the alerts it must raise and then resolve."""

    environment: Environment
    fault: faults.Fault
    alerts: list[tuple[str, str]]
    resolving: list[str]
    injected_at: float = 0.0
    removed_at: float = 0.0


def undo_unless_removed(episode: Episode) -> None:
    """A phase that failed half-way still leaves the stack as it found it."""
    if not episode.removed_at:
        episode.fault.remove()


def expected_alerts(spec: str) -> list[tuple[str, str]]:
    """'Alert:severity, Other:severity' -> [(alert, severity), ...]"""
    pairs = [item.strip().split(":") for item in spec.split(",") if item.strip()]
    return [(alert.strip(), severity.strip()) for alert, severity in pairs]


def check_notification(note: Notification, alertname: str, severity: str, runbooks: str) -> None:
    assert note.labels.get("severity") == severity, f"{alertname}: {note.labels}"
    runbook = note.annotations.get("runbook_url", "")
    anchor = runbook.rpartition("#")[2]
    assert anchor and f"\n## {anchor}\n" in runbooks, (
        f"{alertname}: runbook {runbook!r} has no section in docs/runbooks.md"
    )
    assert note.annotations.get("summary"), f"{alertname} has no summary"


def await_all(
    alert_sink: AlertSink,
    episodes: list[Episode],
    status: str,
    timeout: float,
    explain: Callable[[Episode], str],
) -> dict[tuple[int, str], Notification]:
    """Poll the receiver until every expected (episode, alert) has a ``status``
    notification; on a timeout, ``explain`` says what each late episode's environment saw."""
    wanted = {
        (index, name)
        for index, episode in enumerate(episodes)
        for name in ([a for a, _ in episode.alerts] if status == "firing" else episode.resolving)
    }
    found: dict[tuple[int, str], Notification] = {}

    def complete() -> bool:
        notes = alert_sink.notifications()
        for index, name in wanted - set(found):
            episode = episodes[index]
            since = episode.injected_at if status == "firing" else episode.removed_at
            note = next(
                (
                    n
                    for n in sorted(notes, key=lambda n: n.received_at)
                    if n.is_about(name, episode.fault.labels, status, since)
                ),
                None,
            )
            if note is not None:
                found[(index, name)] = note
        return set(found) == wanted

    try:
        wait_until(complete, timeout=timeout, interval=1, describe=f"{status} notifications")
    except WaitTimeout:
        missing = [
            f"{name} ({episodes[i].fault.name}, {episodes[i].fault.labels})"
            for i, name in sorted(wanted - set(found))
        ]
        got = sorted(
            {(n.status, n.labels.get("alertname", "")) for n in alert_sink.notifications()}
        )
        seen = "; ".join(explain(episodes[i]) for i in sorted({i for i, _ in wanted - set(found)}))
        pytest.fail(
            f"no {status} notification within {timeout:.0f}s for {missing}; got {got}; {seen}"
        )
    return found


@when(
    parsers.parse(
        "these faults are injected, {rate:d} reads a second going to each environment, "
        "one phase after the other"
    ),
    target_fixture="fault_phases",
)
def _(
    kube: Kube,
    environments: Environments,
    cluster_provider: ClusterProvider,
    toolbox_image: str,
    alert_sink: AlertSink,
    prometheus: Prometheus,
    paths: Paths,
    rate: int,
    datatable: list[list[str]],
    request: pytest.FixtureRequest,
    record_figure: RecordFigure,
    record_left_out: RecordLeftOut,
) -> list[list[Episode]]:
    """Each phase: inject its faults together, every alert must reach the receiver with its
    labels, severity, summary and runbook; remove them together, every one must resolve."""
    header, *rows = datatable
    table = applicable_faults(
        [dict(zip(header, row, strict=True)) for row in rows], cluster_provider, record_left_out
    )
    runbooks = (paths.repo / "docs" / "runbooks.md").read_text().lower()
    involved = {row["environment"]: environments.ensure(row["environment"]) for row in table}
    readers = {
        name: start_reader(kube, environment, toolbox_image, rate, request)
        for name, environment in involved.items()
    }
    explain = functools.partial(what_the_environment_saw, kube, prometheus, readers)
    start = functools.partial(start_reader, kube, image=toolbox_image, request=request)
    hour_requests = functools.partial(requests_in_the_last_hour, prometheus)
    phases: list[list[Episode]] = []
    for phase in sorted({row["phase"] for row in table}):
        episodes = []
        for row in (r for r in table if r["phase"] == phase):
            environment = involved[row["environment"]]
            fault = FAULTS[row["fault"]](
                FaultContext(kube, environment, cluster_provider, tuple(involved.values()))
            )
            episodes.append(
                Episode(
                    environment,
                    fault,
                    expected_alerts(row["alerts"]),
                    [name for name, _ in expected_alerts(row["resolving"])],
                )
            )
        phases.append(episodes)
        stale = [line for episode in episodes for line in already_firing(prometheus, episode)]
        assert not stale, (
            f"firing before their fault, so no new notification would come (Alertmanager "
            f"repeats one after an hour; a run on this cluster less than an hour ago?): {stale}"
        )
        extra_readers = [
            (episode.environment.client_namespace, reader)
            for episode in episodes
            if (
                reader := traffic_like_the_last_hour(
                    episode, rate, hour_requests, start, record_figure
                )
            )
        ]
        for episode in episodes:
            episode.injected_at = time.time()
            episode.fault.inject()
            request.addfinalizer(functools.partial(undo_unless_removed, episode))
            log.info("   phase %s: %s in %s", phase, episode.fault.name, episode.environment.name)
        fired = await_all(alert_sink, episodes, "firing", 150, explain)
        log.info("   phase %s: every alert received; removing the faults", phase)
        for (index, name), note in fired.items():
            episode = episodes[index]
            severity = dict(episode.alerts)[name]
            check_notification(note, name, severity, runbooks)
            prefix = f"{episode.environment.name}_{name}"
            record_figure(
                f"{prefix}_seconds_to_receiver", round(note.received_at - episode.injected_at, 1)
            )
            if note.starts_at is not None:  # the rule's detection, apart from the delivery
                record_figure(
                    f"{prefix}_seconds_to_firing", round(note.starts_at - episode.injected_at, 1)
                )
        # The clock of a repair starts when it begins: a node's exporter answers again
        # (and NodeDown resolves) before the node's pods are all Ready.
        for episode in episodes:
            episode.removed_at = time.time()
        with ThreadPoolExecutor(max_workers=len(episodes)) as pool:
            list(pool.map(lambda e: e.fault.remove(), episodes))
        for namespace, reader in extra_readers:
            kube.delete_pod(namespace, reader)
        resolved = await_all(alert_sink, episodes, "resolved", 180, explain)
        log.info("   phase %s: every alert resolved", phase)
        for (index, name), note in resolved.items():
            episode = episodes[index]
            record_figure(
                f"{episode.environment.name}_{name}_seconds_to_resolved",
                round(note.received_at - episode.removed_at, 1),
            )
    return phases


MAX_OUTAGE_RATE = 40  # requests/s one more reader adds; the hour's average beyond it pages later


def traffic_like_the_last_hour(
    episode: Episode,
    rate: int,
    hour_requests: Callable[[str], int],
    start: Callable[..., str],
    record_figure: RecordFigure,
) -> str | None:
    """A burn-rate page weighs the fault's errors against the last hour's requests. In a
    real outage the failing traffic is the hour's usual traffic (then the page comes 52 s
    into a total outage); here earlier scenarios may have sent dev hundreds of requests a
    second, and 4 failing reads a second would take minutes. So, for an episode expecting
    a page, one more reader brings the environment's traffic up to the hour's average
    (at most ``MAX_OUTAGE_RATE`` more); returns that reader's pod, if one was needed."""
    if not any(name.endswith("BudgetBurn") for name, _ in episode.alerts):
        return None
    environment = episode.environment
    hour = hour_requests(environment.namespace)
    extra = min(MAX_OUTAGE_RATE, -(-hour // 3600) - rate)
    record_figure(f"{environment.name}_requests_in_the_hour_before_fault", hour)
    record_figure(f"{environment.name}_requests_per_second_during_fault", rate + max(extra, 0))
    if extra <= 0:
        return None
    log.info("   %s: %d more reads a second, the last hour's average", environment.name, extra)
    return start(environment, rate=extra)


def requests_in_the_last_hour(prometheus: Prometheus, namespace: str) -> int:
    """The API requests a burn-rate page weighs a fault's errors against: it fires once
    1.44 % of the last hour's requests failed, so a busy hour before the fault delays it."""
    samples = prometheus.query(
        f'sum(increase(engine_http_requests_total{{job="engine-api", namespace="{namespace}", '
        f'route!~"/healthz|/readyz|/metrics"}}[1h]))'
    )
    return round(samples[0].value) if samples else 0


def already_firing(prometheus: Prometheus, episode: Episode) -> list[str]:
    """The episode's expected alerts that fire already, for the fault's labels."""
    labels = "".join(f', {key}="{value}"' for key, value in episode.fault.labels.items())
    return [
        f"{name} {episode.fault.labels}"
        for name, _ in episode.alerts
        if prometheus.query(f'ALERTS{{alertname="{name}", alertstate="firing"{labels}}}')
    ]


def applicable_faults(
    table: list[dict[str, str]], provider: ClusterProvider, record_left_out: RecordLeftOut
) -> list[dict[str, str]]:
    """The faults this provider can make. On a cluster the suite did not create a node
    cannot be powered off: the other faults still prove their alerts there, and the
    report names the ones left out (all left out: the scenario is not applicable)."""
    kept, left = [], []
    for row in table:
        needed = FAULT_NEEDS.get(row["fault"])
        if needed is None or provider.can(needed):
            kept.append(row)
        else:
            left.append(f"{row['fault']} in {row['environment']} (needs {needed})")
    if left:
        log.warning("   not applicable on %s: %s", provider.name, "; ".join(left))
        for what in left:
            record_left_out(what)
    if not kept:
        pytest.skip(f"not applicable on {provider.name}: {'; '.join(left)}")
    return kept


@then("every fault raised its alerts and every alert resolved once its fault was gone")
def _(fault_phases: list[list[Episode]], record_figure: RecordFigure) -> None:
    episodes = [episode for phase in fault_phases for episode in phase]
    assert episodes and all(e.injected_at and e.removed_at for e in episodes), episodes
    record_figure("faults_injected", len(episodes))
    record_figure("alerts_checked", sum(len(e.alerts) for e in episodes))


@dataclass
class TracedRequest:
    request_id: str
    failed_at: float
    job_id: int
    served_by: str = ""


def with_request_id(request_id: str) -> tuple[str, ...]:
    return ("-H", f"X-Request-ID: {request_id}")


@when(
    "a job is submitted with a known request ID, and a request with that ID fails in the API",
    target_fixture="traced",
)
def _(kube: Kube, environment: Environment) -> TracedRequest:
    request_id = f"trace-{uuid.uuid4().hex}"
    writer = environment.token("writer")
    submitted = api_call(
        kube,
        environment,
        "POST",
        "/v1/jobs",
        writer,
        {"input": "trace me", "iterations": 1},
        curl_args=with_request_id(request_id),
    )
    assert submitted.status == 202, submitted
    broken = faults.table_renamed(kube, environment, table="thoughts")
    broken.inject()
    failed_at = time.time()
    try:
        failed = api_call(
            kube,
            environment,
            "GET",
            "/v1/sessions/1/thoughts",
            writer,
            curl_args=with_request_id(request_id),
        )
    finally:
        broken.remove()
    assert failed.status == 500, f"the request under a missing table answered {failed}"
    return TracedRequest(request_id, failed_at, int(submitted.body["id"]))


@then(
    parsers.parse(
        "the log store finds by that ID the API's lines, the worker's line for the job "
        "and the error detail, within {seconds:d} seconds"
    )
)
def _(kube: Kube, traced: TracedRequest, seconds: int, record_figure: RecordFigure) -> None:
    store = LogStore(kube.api)
    wanted: dict[str, Callable[[dict[str, Any]], bool]] = {
        "api request line": lambda e: (
            e.get("service") == "engine-api" and e.get("_msg") == "request"
        ),
        "api job queued": lambda e: (
            e.get("service") == "engine-api" and e.get("_msg") == "job queued"
        ),
        "worker job done": lambda e: (
            e.get("service") == "engine-worker"
            and e.get("_msg") == "job done"
            and str(e.get("job_id")) == str(traced.job_id)
        ),
        "error detail": lambda e: (
            e.get("level") == "ERROR" and 'relation "thoughts" does not exist' in e.get("exc", "")
        ),
    }

    def everything_found() -> list[dict[str, Any]] | None:
        entries = store.query(f'request_id:"{traced.request_id}"')
        found = {name for name, match in wanted.items() if any(match(e) for e in entries)}
        return entries if found == set(wanted) else None

    limit = 6 * seconds  # pass/fail is generous; the budget (benchmarks/) is the figure
    try:
        entries, _ = wait_until(
            everything_found, timeout=limit, interval=0.5, describe="the traced lines"
        )
    except WaitTimeout:
        entries = store.query(f'request_id:"{traced.request_id}"')
        missing = [n for n, match in wanted.items() if not any(match(e) for e in entries)]
        pytest.fail(f"not in the log store after {limit} s: {missing}; found {entries}")
    record_figure("log_lines_found", len(entries))
    record_figure("log_searchable_after_s", round(time.time() - traced.failed_at, 1))
    pods = {e.get("kubernetes.pod_name") for e in entries if e.get("service") == "engine-api"}
    assert all(pods), f"lines carry no pod name: {entries}"
    traced.served_by = sorted(p for p in pods if p)[0]


@when("the engine-api pod that logged them is deleted", target_fixture="deleted_pod")
def _(kube: Kube, environment: Environment, traced: TracedRequest) -> str:
    pod = traced.served_by
    kube.core.delete_namespaced_pod(pod, environment.namespace)

    def gone() -> bool:
        try:
            kube.core.read_namespaced_pod(pod, environment.namespace)
        except ApiException as error:
            return bool(error.status == 404)
        return False

    wait_until(gone, timeout=120, interval=1, describe=f"{pod} gone")
    faults.wait_workloads_ready(kube, environment)
    return pod


@then("its lines are still found in the log store")
def _(kube: Kube, traced: TracedRequest, deleted_pod: str, record_figure: RecordFigure) -> None:
    entries = LogStore(kube.api).query(
        f'request_id:"{traced.request_id}" AND kubernetes.pod_name:"{deleted_pod}"'
    )
    assert entries, f"the lines of deleted pod {deleted_pod} are gone from the log store"
    record_figure("lines_of_deleted_pod", len(entries))


def request_rate(prometheus: Prometheus, environment: Environment) -> float:
    samples = prometheus.query(
        "sum(rate(engine_http_requests_total"
        f'{{namespace="{environment.namespace}", job="engine-api", route="/v1/sessions"}}[15s]))'
    )
    return samples[0].value if samples else 0.0


@when(
    parsers.parse("a client starts sending {rate:d} requests a second to the engine API"),
    target_fixture="load_change",
)
def _(
    kube: Kube,
    environment: Environment,
    prometheus: Prometheus,
    toolbox_image: str,
    rate: int,
    request: pytest.FixtureRequest,
) -> dict[str, float]:
    baseline = request_rate(prometheus, environment)
    name = f"burst-{uuid.uuid4().hex[:6]}"
    namespace = environment.client_namespace
    kube.create(
        namespace,
        workloads.traffic_pod(
            name,
            f"{environment.api_url}/v1/sessions",
            toolbox_image,
            interval_s=1 / rate,
            duration_s=90,
            count=rate * 90,
            token=environment.token("reader"),
            admit=api_addresses(kube, environment),
        ),
    )
    request.addfinalizer(lambda: kube.delete_pod(namespace, name))
    kube.wait_pods_ready(namespace, [name], timeout=60)
    # The burst starts once every engine-api pod's node admits the client, not before.
    kube.wait_log_line(namespace, name, '{"admitted_after_s"', timeout=150)
    return {"baseline": baseline, "started": time.time(), "rate": float(rate)}


@then(
    parsers.parse(
        "Prometheus shows the new rate within {seconds:d} seconds, from samples "
        "less than {age:d} seconds old"
    )
)
def _(
    prometheus: Prometheus,
    environment: Environment,
    load_change: dict[str, float],
    seconds: int,
    age: int,
    record_figure: RecordFigure,
) -> None:
    threshold = load_change["baseline"] + load_change["rate"] / 2

    def visible() -> float | None:
        rate = request_rate(prometheus, environment)
        return rate if rate >= threshold else None

    try:
        rate, _ = wait_until(visible, timeout=seconds * 3, interval=1, describe="the new rate")
    except WaitTimeout:
        pytest.fail(
            f"the request rate stayed below {threshold:.1f}/s for {seconds * 3} s "
            f"(now {request_rate(prometheus, environment):.1f}/s)"
        )
    shown_after = time.time() - load_change["started"]
    newest = prometheus.query(
        "max(time() - timestamp(engine_http_requests_total"
        f'{{namespace="{environment.namespace}", job="engine-api"}}))'
    )[0].value
    record_figure("load_visible_after_s", round(shown_after, 1))
    record_figure("newest_sample_age_s", round(newest, 1))
    record_figure("rate_before_per_s", round(load_change["baseline"], 2))
    record_figure("rate_seen_per_s", round(rate, 2))
    assert shown_after <= seconds, f"the new load showed after {shown_after:.0f}s"
    assert newest < age, f"the newest sample is {newest:.0f}s old"


@then("the live view in a browser shows the engine's figures")
def _(
    kube: Kube,
    cluster_provider: ClusterProvider,
    environment: Environment,
    paths: Paths,
    request: pytest.FixtureRequest,
    record_figure: RecordFigure,
) -> None:
    shot = browser.screenshot_console(
        cluster_provider.kubeconfig, paths, evidence_dir(request.config)
    )
    assert environment.namespace in shot.text, f"the live view lists no {environment.namespace}"
    row = shot.text.split(environment.namespace, 1)[1].split("\n", 8)
    assert any(ch.isdigit() for ch in " ".join(row)), f"no figures in the row: {row}"
    record_figure("live_view_screenshot", shot.png.name)
    record_figure("live_view_png_bytes", shot.png.stat().st_size)


RETENTION_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
THIRTEEN_MONTHS_S = 395 * 86400


def duration_seconds(text: str) -> float:
    """Prometheus durations such as '400d' or '1y2w'."""
    parts = re.findall(r"(\d+)([ywdhms])", text)
    assert parts, f"not a Prometheus duration: {text!r}"
    return float(sum(int(number) * RETENTION_UNITS[unit] for number, unit in parts))


@then("the running Prometheus keeps at least 13 months of data on a persistent volume")
def _(prometheus: Prometheus, kube: Kube, record_figure: RecordFigure) -> None:
    retention = prometheus.runtime().get("storageRetention", "")
    first = retention.split(" or ")[0].strip()
    seconds = duration_seconds(first)
    assert seconds >= THIRTEEN_MONTHS_S, f"retention {retention!r} is shorter than 13 months"
    pod = kube.core.read_namespaced_pod("prometheus-0", NAMESPACE)
    data = next(v for v in pod.spec.volumes if v.name == "data")
    assert data.persistent_volume_claim, "Prometheus' data volume is not a PersistentVolumeClaim"
    claim = kube.core.read_namespaced_persistent_volume_claim(
        data.persistent_volume_claim.claim_name, NAMESPACE
    )
    assert claim.status.phase == "Bound", f"{claim.metadata.name} is {claim.status.phase}"
    record_figure("retention", retention)
    record_figure("retention_days", round(seconds / 86400))
    record_figure("prometheus_volume", f"{claim.metadata.name} ({claim.spec.storage_class_name})")


@then("the capacity recording rules have data")
def _(prometheus: Prometheus, record_figure: RecordFigure) -> None:
    empty = []
    for metric in capacity.SERIES:

        def present(name: str = metric) -> bool:
            return bool(prometheus.query(name))

        try:
            wait_until(present, timeout=90, interval=3, describe=f"{metric} recorded")
        except WaitTimeout:
            empty.append(metric)
    assert not empty, f"capacity aggregates with no data: {empty}"
    record_figure("capacity_series", len(capacity.SERIES))


def oldest_sample(prometheus: Prometheus) -> float:
    """Prometheus' oldest stored sample, read from its own metrics.

    The gauge only exists once Prometheus has scraped itself, which a restarted
    Prometheus does one scrape interval after it is ready, so this polls.
    """

    def lowest() -> float | None:
        found = prometheus.query("min(prometheus_tsdb_lowest_timestamp_seconds)")
        return found[0].value if found else None

    value, _ = wait_until(lowest, timeout=90, interval=3, describe="Prometheus' lowest timestamp")
    return float(value)


@dataclass
class HistoryMark:
    at: float
    series: int
    oldest: float


@when("Prometheus' pod is deleted and comes back", target_fixture="history_mark")
def _(prometheus: Prometheus, kube: Kube, record_figure: RecordFigure) -> HistoryMark:
    at = time.time() - 30
    before = prometheus.query("count(up)", at=at)
    assert before and before[0].value > 0, "no samples 30 s ago to compare"
    oldest = oldest_sample(prometheus)
    kube.core.delete_namespaced_pod("prometheus-0", NAMESPACE)
    started = time.time()

    def back() -> bool:
        try:
            replaced = kube.core.read_namespaced_pod("prometheus-0", NAMESPACE)
        except ApiException:
            return False
        return replaced.metadata.creation_timestamp.timestamp() > started - 5 and prometheus.ready()

    _, seconds = wait_until(back, timeout=240, interval=2, describe="Prometheus back and ready")
    record_figure("prometheus_back_after_s", round(seconds, 1))
    return HistoryMark(at, int(before[0].value), oldest)


@then("the samples written before the restart are still there")
def _(prometheus: Prometheus, history_mark: HistoryMark, record_figure: RecordFigure) -> None:
    after = prometheus.query("count(up)", at=history_mark.at)
    assert after and int(after[0].value) == history_mark.series, (
        f"count(up) at {history_mark.at:.0f}: {history_mark.series} before the restart, "
        f"{after[0].value if after else 'nothing'} after"
    )
    oldest = oldest_sample(prometheus)
    assert oldest <= history_mark.oldest + 1, "the oldest sample is newer after the restart"
    record_figure("history_kept_from", time.strftime("%H:%M:%SZ", time.gmtime(oldest)))
    record_figure("history_span_s", round(time.time() - oldest))


@then("the capacity report writes a CSV and a plot from the recorded aggregates")
def _(prometheus: Prometheus, request: pytest.FixtureRequest, record_figure: RecordFigure) -> None:
    report = capacity.write_report(prometheus, evidence_dir(request.config) / "capacity", hours=1)
    assert report.rows > 0 and report.series >= len(capacity.SERIES), report
    with report.csv_path.open() as handle:
        metrics = {row["metric"] for row in csv.DictReader(handle)}
    assert metrics == set(capacity.SERIES), f"CSV has {metrics}"
    assert report.plot_path.stat().st_size > 10_000, "the plot is (nearly) empty"
    record_figure("capacity_csv_rows", report.rows)
    record_figure("capacity_plot", report.plot_path.name)
