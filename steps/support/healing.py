"""Faults the engine must heal from with no human action, made from outside it.

A process is killed (SIGKILL) or frozen (SIGSTOP: a real hang, the process holds its
sockets and answers nothing) from the node's PID namespace by a privileged agent pod,
as a chaos tool does; a pod is deleted through the API. Then the kubelet's probes and
the workload's controller must do the rest. ``watch`` records, from the moment of the
fault: when the pod left service, when it was restarted or replaced, when it was
Ready again, and when the workload had all its replicas back.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from kubernetes.client.rest import ApiException

from deployer.lower.waiting import WaitTimeout
from steps.support import workloads
from steps.support.environments import Environment, serving_pods
from steps.support.kube import Kube, is_ready

log = logging.getLogger(__name__)

CONTAINERS = {
    "engine-api": "engine-api",
    "engine-worker": "engine-worker",
    "engine-postgres": "postgres",
}
SIGNALS = {"process killed": "KILL", "process frozen": "STOP"}
FAULTS = (*SIGNALS, "pod deleted")


@dataclass
class Healing:
    workload: str
    fault: str
    pod: str
    uid: str
    restarts_before: int
    injected_at: float
    out_of_service_at: float | None = None
    restarted_at: float | None = None
    ready_at: float | None = None
    full_capacity_at: float | None = None
    answered_at: float | None = None  # the engine's clients got a good answer again

    @property
    def key(self) -> str:
        """The prefix of this fault's figures in the report."""
        return f"{self.workload}_{self.fault.replace(' ', '_')}"

    def seconds(self) -> dict[str, float | None]:
        def since(moment: float | None) -> float | None:
            return None if moment is None else round(moment - self.injected_at, 1)

        return {
            "to_leave_service": since(self.out_of_service_at),
            "to_restart_or_replace": since(self.restarted_at),
            "to_ready": since(self.ready_at),
            "to_full_capacity": since(self.full_capacity_at),
            "to_clients_answered": since(self.answered_at),
        }


def node_agent(kube: Kube, namespace: str, node: str, image: str) -> str:
    """A privileged pod in ``node``'s PID namespace (created once per namespace and node)."""
    agent = f"node-agent-{node}"[:63]
    try:
        kube.core.read_namespaced_pod(agent, namespace)
    except ApiException as error:
        if error.status != 404:
            raise
        try:
            kube.create(namespace, workloads.chaos_agent(agent, node, image))
        except ApiException as race:  # another fault's thread created it first
            if race.status != 409:
                raise
    kube.wait_pods_ready(namespace, [agent], timeout=120)
    return agent


def signal_container(
    kube: Kube, agents: str, pod: Any, container: str, signal: str, image: str
) -> tuple[int, ...]:
    """Send ``signal`` to every process of one container, from its node's PID namespace.

    PID 1 of a container ignores signals sent from inside its own PID namespace, and
    engine images have no shell: from the node is how a crash or a hang really looks.
    """
    container_id = next(
        s.container_id for s in pod.status.container_statuses if s.name == container
    ).split("://", 1)[1]
    agent = node_agent(kube, agents, pod.spec.node_name, image)
    script = (
        f'for p in /proc/[0-9]*; do if grep -qs "{container_id}" "$p/cgroup"; then '
        f'kill -{signal} "${{p#/proc/}}" && echo "${{p#/proc/}}"; fi; done'
    )
    code, output = kube.exec(agents, agent, ["sh", "-c", script])
    pids = tuple(int(line) for line in output.split() if line.isdigit())
    assert code == 0 and pids, f"found no process of container {container_id[:12]}: {output}"
    return pids


def restart_count(pod: Any, container: str) -> int:
    for status in pod.status.container_statuses or []:
        if status.name == container:
            return int(status.restart_count)
    return 0


def inject(
    kube: Kube, environment: Environment, workload: str, fault: str, agents: str, image: str
) -> Healing:
    """Make ``fault`` on one Ready pod of ``workload``; return what to watch."""
    assert fault in FAULTS, f"unknown fault {fault!r}; known: {FAULTS}"
    pod = next(p for p in serving_pods(kube, environment, workload) if is_ready(p))
    container = CONTAINERS[workload]
    healing = Healing(
        workload,
        fault,
        pod.metadata.name,
        pod.metadata.uid,
        restart_count(pod, container),
        time.time(),
    )
    if fault == "pod deleted":
        kube.core.delete_namespaced_pod(pod.metadata.name, environment.namespace)
    else:
        signal_container(kube, agents, pod, container, SIGNALS[fault], image)
    log.info("   %s: %s on %s", workload, fault, pod.metadata.name)
    return healing


def full_capacity(kube: Kube, environment: Environment, workload: str) -> bool:
    if workload == "engine-postgres":
        status = kube.apps.read_namespaced_stateful_set(workload, environment.namespace).status
        return bool(status.ready_replicas == status.replicas)
    wanted = kube.wanted_replicas(environment.namespace, workload)
    pods = kube.core.list_namespaced_pod(
        environment.namespace, label_selector=f"app.kubernetes.io/name={workload}"
    ).items
    serving = [p for p in pods if p.metadata.deletion_timestamp is None]
    return len(serving) == wanted and all(is_ready(p) for p in serving)


def watch(kube: Kube, environment: Environment, healing: Healing, timeout: float) -> Healing:
    """Poll until the workload is whole again, noting each moment of the healing."""
    container = CONTAINERS[healing.workload]
    deadline = time.time() + timeout
    while healing.full_capacity_at is None:
        if time.time() > deadline:
            raise WaitTimeout(
                f"{healing.workload} did not heal from '{healing.fault}' on {healing.pod} "
                f"within {timeout:.0f}s: {healing.seconds()}"
            )
        now = time.time()
        pods = kube.core.list_namespaced_pod(
            environment.namespace, label_selector=f"app.kubernetes.io/name={healing.workload}"
        ).items
        same = next((p for p in pods if p.metadata.uid == healing.uid), None)
        gone = same is None or same.metadata.deletion_timestamp is not None
        if healing.out_of_service_at is None and (gone or not is_ready(same)):
            healing.out_of_service_at = now
        if healing.fault == "pod deleted":
            others = [p for p in pods if p.metadata.uid != healing.uid]
            replacements = [
                p
                for p in others
                if p.metadata.creation_timestamp.timestamp() >= healing.injected_at - 1
                and p.metadata.deletion_timestamp is None
            ]
            if healing.restarted_at is None and replacements:
                healing.restarted_at = now
            if healing.ready_at is None and any(is_ready(p) for p in replacements):
                healing.ready_at = now
        elif same is not None:
            if healing.restarted_at is None and restart_count(same, container) > (
                healing.restarts_before
            ):
                healing.restarted_at = now
            if healing.ready_at is None and healing.restarted_at and is_ready(same):
                healing.ready_at = now
        # A deleted pod drains before it goes: the healing is over once it is gone, so
        # requests it drops while stopping fall inside the fault's window.
        settled = healing.fault != "pod deleted" or same is None
        if (
            healing.ready_at is not None
            and settled
            and full_capacity(kube, environment, healing.workload)
        ):
            healing.full_capacity_at = now
        time.sleep(0.5)
    return healing
