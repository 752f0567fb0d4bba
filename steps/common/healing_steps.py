"""Steps that break the engine's own processes, pods and nodes and measure it heal (R1.3).

Throughout, the engine's clients read, write and queue jobs through its Service; each
fault's healing is timed (support/healing.py) and every figure goes in the report.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when

from deployer.lower.waiting import wait_until
from steps.support import clients, healing
from steps.support.clients import EngineClients
from steps.support.environments import Environment, Environments, serving_pods
from steps.support.faults import (
    wait_clients_served,
    wait_node_back,
    wait_node_pods_restarted,
    wait_node_routes,
    wait_workloads_ready,
)
from steps.support.kube import Kube, is_ready
from steps.support.provider import NODE_POWER, ClusterProvider
from steps.support.report import RecordFigure, evidence_dir

log = logging.getLogger(__name__)

JOB_RATIO = 0.2  # of the writes
ANSWERED_WITHIN_S = 180  # generous: the figure, and the scenario's own limit, say more


@dataclass
class NodeLoss:
    node: str
    moved_pods: list[str]
    powered_off_at: float
    powered_on_at: float | None = None
    rescheduled_s: float | None = None


@dataclass
class FaultLog:
    healings: list[healing.Healing] = field(default_factory=list)
    node_loss: NodeLoss | None = None

    def during(self, moment: float) -> str:
        """Which faults were out at ``moment`` (for a failure's message)."""
        out = [
            made.key
            for made in self.healings
            if made.injected_at <= moment <= (made.answered_at or float("inf"))
        ]
        return f"starting while {', '.join(out)} was out" if out else "starting between faults"


@given(
    parsers.parse(
        "{count:d} clients reading, writing and queueing jobs through the engine API, "
        "each at most every {interval:d} ms and waiting {timeout:d} s for an answer"
    ),
    target_fixture="engine_clients",
)
def _(
    request: pytest.FixtureRequest,
    kube: Kube,
    environment: Environment,
    toolbox_image: str,
    count: int,
    interval: int,
    timeout: int,
) -> EngineClients:
    """Each request over a new connection, so each goes through the Service's routing."""
    return clients.start(
        kube,
        environment,
        toolbox_image,
        count,
        interval / 1000,
        job_ratio=JOB_RATIO,
        timeout_s=timeout,
        log_dir=evidence_dir(request.config),
    )


@when(
    "these faults are made on the engine, in turn for each workload:",
    target_fixture="fault_log",
)
def _(
    kube: Kube,
    environment: Environment,
    namespace: str,
    toolbox_image: str,
    engine_clients: EngineClients,
    datatable: list[list[str]],
) -> FaultLog:
    """Each workload's faults in turn: the next waits until the workload is whole and the
    clients are answered again. The workloads' sequences run side by side (they are
    independent, and it halves the wait)."""
    header, *rows = datatable
    assert header == ["workload", "fault"], header
    lanes: dict[str, list[str]] = {}
    for workload, fault in rows:
        lanes.setdefault(workload, []).append(fault)
    found = FaultLog()
    errors: list[BaseException] = []

    def run(workload: str, faults: list[str]) -> None:
        try:
            for fault in faults:
                made = healing.inject(kube, environment, workload, fault, namespace, toolbox_image)
                healing.watch(kube, environment, made, timeout=240)
                assert made.full_capacity_at is not None
                made.answered_at = engine_clients.answered_since(
                    kube, made.full_capacity_at, timeout=ANSWERED_WITHIN_S
                )
                log.info("   %s healed from '%s': %s", workload, fault, made.seconds())
                found.healings.append(made)
        except BaseException as error:  # noqa: BLE001 - re-raised in the step's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=lane) for lane in lanes.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return found


@then(
    parsers.parse(
        "each fault was healed with no human action, the workload whole again "
        "within {seconds:d} seconds"
    )
)
def _(fault_log: FaultLog, seconds: int, record_figure: RecordFigure) -> None:
    slow = []
    for made in fault_log.healings:
        figures = made.seconds()
        key = made.key
        for name, value in figures.items():
            # Not observed: the moment fell between two polls (0.5 s apart).
            record_figure(f"{key}_seconds_{name}", "not observed" if value is None else value)
        total = figures["to_full_capacity"]
        if total is None or total > seconds:
            slow.append(f"{key}: {figures}")
    assert not slow, f"healed too slowly (limit {seconds} s): {slow}"


@then(
    parsers.parse(
        "the engine API kept answering: no {seconds:d}-second gap, "
        "and no failed request while a pod was deleted"
    )
)
def _(
    kube: Kube,
    engine_clients: EngineClients,
    fault_log: FaultLog,
    seconds: int,
    record_figure: RecordFigure,
) -> None:
    requests = engine_clients.requests(kube)
    gap = engine_clients_gap(requests, record_figure)
    # Only engine-api serves the clients; the worker's faults run alongside, so a failure
    # in their windows is engine-api's, and counting it twice would mislead.
    lost_to_deletion: dict[str, int] = {}
    for made in (m for m in fault_log.healings if m.workload == "engine-api"):
        assert made.answered_at is not None  # every fault's lane waits for it
        failed = clients.failures_between(requests, made.injected_at, made.answered_at)
        record_figure(f"{made.key}_failed_requests", failed)
        if made.fault == "pod deleted" and failed:
            lost_to_deletion = clients.failure_kinds(requests, made.injected_at, made.answered_at)
    start, end = clients.longest_gap_bounds(requests)
    assert gap <= seconds, (
        f"the engine API answered nothing for {gap:.1f} s (limit {seconds} s), "
        f"{fault_log.during(start)}: {clients.failure_kinds(requests, start, end)}"
    )
    assert not lost_to_deletion, (
        f"requests failed while a pod was deleted ({lost_to_deletion}): "
        "a graceful stop must lose none"
    )


def engine_clients_gap(requests: list[dict[str, Any]], record_figure: RecordFigure) -> float:
    gap = clients.longest_gap(requests)
    failed = sum(1 for r in requests if not r["ok"])
    record_figure("client_requests", len(requests))
    record_figure("client_requests_failed", failed)
    record_figure("client_longest_gap_without_answer_s", round(gap, 2))
    return gap


@then(
    parsers.parse(
        "the engine API answered again within {seconds:d} seconds of the database being Ready"
    )
)
def _(
    kube: Kube,
    engine_clients: EngineClients,
    fault_log: FaultLog,
    seconds: int,
    record_figure: RecordFigure,
) -> None:
    requests = engine_clients.requests(kube)
    engine_clients_gap(requests, record_figure)
    late = []
    for made in fault_log.healings:
        key = made.key
        assert made.ready_at is not None and made.answered_at is not None
        failing = [r["t"] for r in requests if not r["ok"] and r["t"] >= made.injected_at]
        window = [t for t in failing if t <= made.answered_at]
        record_figure(
            f"{key}_api_error_window_s", round(max(window) - min(window), 1) if window else 0.0
        )
        record_figure(
            f"{key}_failed_requests",
            clients.failures_between(requests, made.injected_at, made.answered_at),
        )
        delay = round(made.answered_at - made.ready_at, 1)
        record_figure(f"{key}_api_answered_after_database_ready_s", delay)
        if delay > seconds:
            late.append(f"{key}: {delay}")
    assert not late, f"the engine API did not recover on its own within {seconds} s: {late}"


@then("every acknowledged write is readable and every accepted job is done, with its result")
def _(kube: Kube, engine_clients: EngineClients, record_figure: RecordFigure) -> None:
    summary = engine_clients.stop(kube)
    record_figure("acknowledged_writes", summary["acknowledged_writes"])
    record_figure("acknowledged_jobs", summary["acknowledged_jobs"])
    record_figure("lost_writes", len(summary["lost_writes"]))
    record_figure("jobs_never_done", len(summary["jobs_never_done"]))
    assert summary["acknowledged_writes"] > 0 and summary["acknowledged_jobs"] > 0, summary
    assert not summary["lost_writes"], f"acknowledged writes lost: {summary['lost_writes']}"
    assert not summary["jobs_never_done"], f"accepted jobs never done: {summary['jobs_never_done']}"
    assert not summary["jobs_wrong_result"], f"jobs done wrong: {summary['jobs_wrong_result']}"


@when(
    "a worker node that runs engine pods but not the database is powered off",
    target_fixture="fault_log",
)
def _(
    request: pytest.FixtureRequest,
    kube: Kube,
    cluster_provider: ClusterProvider,
    environments: Environments,
    environment: Environment,
) -> FaultLog:
    # Before the finalizer: one that tried to start the node again would be skipped too.
    cluster_provider.require(NODE_POWER, "powering a worker node off")
    database_nodes = {p.spec.node_name for p in serving_pods(kube, environment, "engine-postgres")}
    engine = [
        p for app in ("engine-api", "engine-worker") for p in serving_pods(kube, environment, app)
    ]
    candidates = [
        n
        for n in kube.worker_nodes()
        if n not in database_nodes and any(p.spec.node_name == n for p in engine)
    ]
    assert candidates, "no worker node runs engine pods without the database: nothing spread"
    node = candidates[0]
    moved = sorted(p.metadata.name for p in engine if p.spec.node_name == node)
    loss = NodeLoss(node, moved, time.time())
    # Whatever fails after this, the node comes back: every later scenario needs it.
    request.addfinalizer(lambda: restore_node(kube, cluster_provider, environments, loss))
    cluster_provider.power_node(node, on=False)
    log.info("   powered off %s (engine pods on it: %s)", node, moved)
    return FaultLog(node_loss=loss)


def restore_node(
    kube: Kube, cluster_provider: ClusterProvider, environments: Environments, loss: NodeLoss
) -> None:
    """Power a lost node on again if its scenario ended before doing so, and wait for it
    and every environment to be whole."""
    if loss.powered_on_at is not None:
        return
    log.warning("   the scenario ended with %s powered off: starting it again", loss.node)
    power_on(cluster_provider, loss)
    assert loss.powered_on_at is not None
    wait_node_back(kube, cluster_provider, loss.node, loss.powered_on_at, timeout=300)
    wait_environments_whole(kube, environments)


def power_on(cluster_provider: ClusterProvider, loss: NodeLoss) -> None:
    """Start the node again; the moment is taken first, so nothing it starts predates it."""
    powered_on_at = time.time()
    cluster_provider.power_node(loss.node, on=True)
    loss.powered_on_at = powered_on_at


def wait_environments_whole(kube: Kube, environments: Environments) -> None:
    for deployed in environments.deployed.values():
        wait_workloads_ready(kube, deployed)
        kube.wait_pods_ready(deployed.client_namespace, [deployed.client_pod], timeout=180)
    wait_clients_served(kube, tuple(environments.deployed.values()))


@then(parsers.parse("its engine pods are Ready on the remaining nodes within {minutes:d} minutes"))
def _(
    kube: Kube,
    environment: Environment,
    fault_log: FaultLog,
    minutes: int,
    record_figure: RecordFigure,
) -> None:
    loss = fault_log.node_loss
    assert loss is not None

    def rescheduled() -> bool:
        for app in ("engine-api", "engine-worker"):
            wanted = kube.wanted_replicas(environment.namespace, app)
            pods = kube.core.list_namespaced_pod(
                environment.namespace, label_selector=f"app.kubernetes.io/name={app}"
            ).items
            elsewhere = [
                p
                for p in pods
                if p.spec.node_name != loss.node
                and p.metadata.deletion_timestamp is None
                and is_ready(p)
            ]
            if len(elsewhere) < wanted:
                return False
        return True

    wait_until(
        rescheduled,
        timeout=minutes * 60,
        interval=1,
        describe=f"engine-api and engine-worker whole again without {loss.node}",
    )
    loss.rescheduled_s = round(time.time() - loss.powered_off_at, 1)
    record_figure("node_lost_engine_pods_on_it", len(loss.moved_pods))
    record_figure("node_lost_seconds_to_full_capacity_elsewhere", loss.rescheduled_s)


@then(parsers.parse("the engine API kept answering: no {seconds:d}-second gap"))
def _(
    kube: Kube,
    engine_clients: EngineClients,
    fault_log: FaultLog,
    seconds: int,
    record_figure: RecordFigure,
) -> None:
    """Until the node is declared lost (node-monitor-grace-period, 30 s) the Service still
    sends its share of new connections to the pods on it, and each such request waits the
    clients' 3-s timeout: gaps of several seconds happen by chance (simulated with two of
    three replicas on the node: > 10 s in ~6 % of runs, > 20 s in < 0.05 %). Engine pods
    that were not spread leave no replica answering until they are rescheduled, a gap of
    detection + 10-s toleration + start, over 40 s."""
    loss = fault_log.node_loss
    assert loss is not None
    requests = engine_clients.requests(kube)
    engine_clients.keep_log(kube)
    failed_after = [r["t"] for r in requests if not r["ok"] and r["t"] >= loss.powered_off_at]
    record_figure(
        "node_lost_seconds_with_failed_requests",
        round(max(failed_after) - loss.powered_off_at, 1) if failed_after else 0.0,
    )
    gap = engine_clients_gap(requests, record_figure)
    start, end = clients.longest_gap_bounds(requests)
    assert gap <= seconds, (
        f"the engine API answered nothing for {gap:.1f} s (limit {seconds} s), from "
        f"{clients.clock(start)}; the requests sent then failed "
        f"with {clients.failure_kinds(requests, start, end)}"
    )


@when("the node is powered on again")
def _(cluster_provider: ClusterProvider, fault_log: FaultLog) -> None:
    assert fault_log.node_loss is not None
    power_on(cluster_provider, fault_log.node_loss)


@then(parsers.parse("it is Ready again within {minutes:d} minutes, and so is every environment"))
def _(
    kube: Kube,
    cluster_provider: ClusterProvider,
    environments: Environments,
    fault_log: FaultLog,
    minutes: int,
    record_figure: RecordFigure,
) -> None:
    loss = fault_log.node_loss
    assert loss is not None and loss.powered_on_at is not None

    wait_until(
        lambda: kube.node_ready(loss.node),
        timeout=minutes * 60,
        interval=2,
        describe=f"{loss.node} Ready",
    )
    record_figure("node_seconds_to_rejoin", round(time.time() - loss.powered_on_at, 1))
    wait_node_routes(kube, cluster_provider, loss.node, loss.powered_on_at, minutes * 60)
    record_figure("node_seconds_to_routes_back", round(time.time() - loss.powered_on_at, 1))
    wait_node_pods_restarted(kube, loss.node, loss.powered_on_at)
    record_figure("node_seconds_to_its_pods_restarted", round(time.time() - loss.powered_on_at, 1))
    wait_environments_whole(kube, environments)
