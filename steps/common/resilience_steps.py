"""Steps that break things on purpose and measure the recovery."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from kubernetes.client.rest import ApiException
from pytest_bdd import then, when

from deployer.lower.waiting import wait_until
from steps.common.workload_steps import ServiceUnderTest, Traffic
from steps.support import workloads
from steps.support.kube import Kube
from steps.support.report import RecordFigure

MAX_GAP_S = 5.0  # longest tolerated stretch without one successful answer
MIN_SUCCESS_RATIO = 0.9  # generous: one of two replicas is down on purpose
OBSERVE_AFTER_HEALING_S = 15.0  # keep measuring after recovery so the window is not just the outage


@dataclass(frozen=True)
class Crash:
    pod: str
    container: str
    restarts_before: int
    killed_at: float
    killed_pids: tuple[int, ...]


@dataclass(frozen=True)
class Deletion:
    pod: str
    deleted_at: float


def service_pods(kube: Kube, service: ServiceUnderTest) -> list[str]:
    pods = kube.core.list_namespaced_pod(service.namespace, label_selector=f"app={service.name}")
    return sorted(p.metadata.name for p in pods.items if p.metadata.deletion_timestamp is None)


def restart_count(kube: Kube, namespace: str, pod: str, container: str) -> int:
    status = kube.core.read_namespaced_pod(pod, namespace).status
    for entry in status.container_statuses or []:
        if entry.name == container:
            count: int = entry.restart_count
            return count
    return 0


def node_agent(kube: Kube, namespace: str, node: str, image: str) -> str:
    """A privileged pod in ``node``'s PID namespace (created once per namespace and node)."""
    agent = f"node-agent-{node}"[:63]
    try:
        kube.core.read_namespaced_pod(agent, namespace)
    except ApiException as error:
        if error.status != 404:
            raise
        kube.create(namespace, workloads.chaos_agent(agent, node, image))
    kube.wait_pods_ready(namespace, [agent], timeout=120)
    return agent


def kill_container_processes(
    kube: Kube, namespace: str, pod: str, container: str, image: str
) -> tuple[int, ...]:
    """SIGKILL every process of one container from the node's PID namespace.

    A process killed from inside its own PID namespace as PID 1 ignores
    signals, and engine images have no shell; killing from the node is what a
    crash looks like to the kubelet, and works for any image.
    """
    target = kube.core.read_namespaced_pod(pod, namespace)
    container_id = next(
        s.container_id for s in target.status.container_statuses if s.name == container
    ).split("://", 1)[1]
    agent = node_agent(kube, namespace, target.spec.node_name, image)
    script = (
        f'for p in /proc/[0-9]*; do if grep -qs "{container_id}" "$p/cgroup"; then '
        'kill -9 "${p#/proc/}" && echo "${p#/proc/}"; fi; done'
    )
    code, output = kube.exec(namespace, agent, ["sh", "-c", script])
    pids = tuple(int(line) for line in output.split() if line.isdigit())
    assert code == 0 and pids, (
        f"found no process of container {container_id[:12]} to kill: {output}"
    )
    return pids


@when("the service's main process is killed inside one container", target_fixture="crash")
def _(kube: Kube, service_under_test: ServiceUnderTest, toolbox_image: str) -> Crash:
    pod = service_pods(kube, service_under_test)[0]
    before = restart_count(kube, service_under_test.namespace, pod, "web")
    killed_at = time.time()
    pids = kill_container_processes(kube, service_under_test.namespace, pod, "web", toolbox_image)
    return Crash(pod, "web", before, killed_at, pids)


@then("that container is restarted by the kubelet")
def _(
    kube: Kube,
    service_under_test: ServiceUnderTest,
    crash: Crash,
    record_figure: RecordFigure,
) -> None:
    __tracebackhide__ = True
    namespace = service_under_test.namespace

    def restarted_and_ready() -> bool:
        return restart_count(
            kube, namespace, crash.pod, crash.container
        ) > crash.restarts_before and kube.pod_ready(namespace, crash.pod)

    wait_until(
        restarted_and_ready,
        timeout=120,
        interval=0.5,
        describe=f"{crash.pod} to restart its container and be Ready",
    )
    record_figure("seconds_to_restart_killed_container", round(time.time() - crash.killed_at, 1))
    record_figure("killed_processes", len(crash.killed_pids))


@when("one of the service's pods is deleted", target_fixture="deletion")
def _(kube: Kube, service_under_test: ServiceUnderTest) -> Deletion:
    pod = service_pods(kube, service_under_test)[-1]
    deleted_at = time.time()
    kube.core.delete_namespaced_pod(pod, service_under_test.namespace)
    return Deletion(pod, deleted_at)


@then("a replacement pod becomes Ready")
def _(
    kube: Kube,
    service_under_test: ServiceUnderTest,
    deletion: Deletion,
    record_figure: RecordFigure,
) -> None:
    __tracebackhide__ = True
    namespace = service_under_test.namespace

    def replaced() -> list[str]:
        ready = [
            p
            for p in service_pods(kube, service_under_test)
            if p != deletion.pod and kube.pod_ready(namespace, p)
        ]
        return ready if len(ready) >= service_under_test.replicas else []

    wait_until(
        replaced,
        timeout=180,
        interval=0.5,
        describe=f"{service_under_test.replicas} Ready pods without {deletion.pod}",
    )
    record_figure("seconds_to_replace_deleted_pod", round(time.time() - deletion.deleted_at, 1))


@then("the service kept answering while it healed")
def _(kube: Kube, traffic: Traffic, record_figure: RecordFigure) -> None:
    __tracebackhide__ = True
    healed_at = time.time()

    def requests_logged() -> list[dict[str, Any]]:
        logged = traffic.requests(kube)
        return logged if logged and logged[-1]["t"] >= healed_at + OBSERVE_AFTER_HEALING_S else []

    requests, _ = wait_until(
        requests_logged,
        timeout=OBSERVE_AFTER_HEALING_S + 60,
        interval=2,
        describe="the client to log traffic after the healing",
    )
    failed = [r for r in requests if not r["ok"]]
    successes = [r["t"] for r in requests if r["ok"]]
    gaps = [
        b - a
        for a, b in zip(
            [requests[0]["t"], *successes], [*successes, requests[-1]["t"]], strict=True
        )
    ]
    longest_gap = max(gaps) if gaps else 0.0
    ratio = len(successes) / len(requests)
    record_figure("requests_total", len(requests))
    record_figure("requests_failed", len(failed))
    record_figure("longest_gap_without_answer_s", round(longest_gap, 2))
    assert longest_gap <= MAX_GAP_S, (
        f"the service did not answer for {longest_gap:.1f}s (limit {MAX_GAP_S}s); "
        f"failures: {[r['detail'] for r in failed[:5]]}"
    )
    assert ratio >= MIN_SUCCESS_RATIO, (
        f"only {ratio:.1%} of {len(requests)} requests succeeded; first failures: "
        f"{[r['detail'] for r in failed[:5]]}"
    )
