"""Real faults injected into a deployed environment from outside the product.

Nothing here asks the engine to misbehave: workloads are scaled away or
given a broken release, Postgres is stopped or has a table taken from under
the engine or locked, a node is powered off. Each fault has an ``inject``
and a ``remove`` that restores exactly what was there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deployer.actions.pod_network import node_subnets
from deployer.lower import rollouts
from deployer.lower.kube import pod_exec
from deployer.lower.waiting import wait_until
from steps.support.environments import Environment, api_call, client_admitted
from steps.support.kube import Kube, is_ready
from steps.support.provider import ClusterProvider

PSQL = [
    "/usr/lib/postgresql/15/bin/psql",
    "-h",
    "/tmp",
    "-U",
    "engine",
    "-v",
    "ON_ERROR_STOP=1",
    "-t",
    "-A",
]
POSTGRES_POD = "engine-postgres-0"
LOCKER = "ce-fault-lock"
MONITORING_APPS = ("prometheus", "alertmanager", "alert-sink")


@dataclass
class Fault:
    name: str
    inject: Callable[[], None]
    remove: Callable[[], None]
    labels: dict[str, str] = field(default_factory=dict)  # labels the alert must carry


def psql(kube: Kube, environment: Environment, sql: str, database: str) -> str:
    code, out, err = pod_exec(
        kube.api,
        environment.namespace,
        POSTGRES_POD,
        [*PSQL, "-d", database, "-c", sql],
        container="postgres",
        timeout=90,
    )
    assert code == 0, f"psql {sql!r} failed: {err[-300:]}"
    return out


def database_name(environment: Environment) -> str:
    return f"engine_{environment.name}"


def wait_workloads_ready(kube: Kube, environment: Environment, timeout: float = 240) -> None:
    def ready() -> bool:
        deployments = kube.apps.list_namespaced_deployment(environment.namespace).items
        statefulsets = kube.apps.list_namespaced_stateful_set(environment.namespace).items
        api_rollout = rollouts.state(kube.api, environment.namespace, "engine-api")
        return (
            all(
                (d.status.available_replicas or 0) >= (d.spec.replicas or 0)
                and (d.status.updated_replicas or 0) >= (d.spec.replicas or 0)
                and not d.status.unavailable_replicas
                for d in deployments
            )
            and all((s.status.ready_replicas or 0) >= (s.spec.replicas or 0) for s in statefulsets)
            and (api_rollout is None or api_rollout.healthy)
        )

    wait_until(ready, timeout=timeout, interval=2, describe=f"{environment.namespace} ready")


def wait_node_pods_restarted(kube: Kube, node: str, since: float, timeout: float = 240) -> None:
    """Every pod bound to ``node`` runs containers started after ``since`` and is Ready.

    A node back within the node-monitor grace period was never marked NotReady, so its
    pods stayed Ready in their Services while the kubelet restarts them in new sandboxes
    with new addresses: until each has restarted, a Service may send a request to an
    address that now belongs to another pod (seen: another environment's certificate)."""

    def restarted() -> bool:
        pods = kube.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}")
        for pod in pods.items:
            if pod.metadata.deletion_timestamp or pod.status.phase in ("Succeeded", "Failed"):
                continue
            statuses = pod.status.container_statuses or []
            started = [
                s.state.running.started_at.timestamp() if s.state.running else 0.0 for s in statuses
            ]
            if not statuses or min(started) < since or not is_ready(pod):
                return False
        return True

    wait_until(
        restarted, timeout=timeout, interval=2, describe=f"every pod on {node} restarted, Ready"
    )


def wait_clients_served(
    kube: Kube, environments: tuple[Environment, ...], timeout: float = 180
) -> None:
    """Each environment's client pod gets a verified 200 from its engine-api /healthz.

    Pods Ready and routes back are not enough after a node restart: requests to a Service
    from the restarted node still went astray for a few seconds more (measured 2 s after
    both), while kube-proxy there caught up with the Service's endpoints."""
    unique = {environment.name: environment for environment in environments}
    for environment in unique.values():

        def served(env: Environment = environment) -> bool:
            return api_call(kube, env, "GET", "/healthz").status == 200

        wait_until(
            served,
            timeout=timeout,
            interval=2,
            describe=f"{environment.name}'s client to be served by engine-api again",
        )


def wait_node_back(
    kube: Kube,
    provider: ClusterProvider,
    node: str,
    powered_on_at: float,
    timeout: float = 180,
) -> None:
    """A node powered on at ``powered_on_at`` is Ready, routes Services and the pod network
    again, and every pod on it is Ready."""
    wait_until(
        lambda: kube.node_ready(node), timeout=timeout, interval=2, describe=f"{node} Ready again"
    )
    wait_node_routes(kube, provider, node, powered_on_at, timeout)
    wait_node_pods_restarted(kube, node, powered_on_at)


def wait_node_routes(
    kube: Kube, provider: ClusterProvider, node: str, powered_on_at: float, timeout: float
) -> None:
    """kube-proxy on a restarted node has written its Service rules since it started, and
    the node has a route to every other node's pods again.

    Until both, a request from one of its pods to a Service, or to a pod elsewhere, has
    nowhere to go: the node refuses it (see the node image's entrypoint); before the node
    did, it left by the default route and a full run's dev client got the machine's
    egress proxy, with its own certificate (curl exit 60)."""
    wait_until(
        lambda: kube.services_routed_since(node, powered_on_at),
        timeout=timeout,
        interval=2,
        describe=f"kube-proxy on {node} to route Services again",
    )
    wait_until(
        lambda: not unrouted_pod_networks(kube, provider, node),
        timeout=timeout,
        interval=2,
        describe=f"{node} to route the other nodes' pod networks again",
    )


def unrouted_pod_networks(kube: Kube, provider: ClusterProvider, node: str) -> list[str]:
    """The other nodes' pod CIDRs ``node`` has no route to."""
    code, output = provider.node_exec(node, ["ip", "-o", "route", "show"])
    if code != 0:
        return ["(ip route failed)"]
    routed = {line.split()[0] for line in output.decode().splitlines() if line.strip()}
    return sorted(
        cidr
        for other, cidrs in node_subnets(kube.api).items()
        if other != node
        for cidr in cidrs
        if cidr not in routed
    )


def scaled_away(kube: Kube, environment: Environment, kind: str, name: str) -> Fault:
    """A workload scaled to zero (a bad change, an operator error); removed by scaling back.
    ``kind``: rollout (engine-api's pods are its Argo Rollout's), deployment or statefulset."""
    namespace = environment.namespace
    reads: dict[str, Callable[[], int]] = {
        "rollout": lambda: kube.wanted_replicas(namespace, name),
        "deployment": lambda: (
            kube.apps.read_namespaced_deployment_scale(name, namespace).spec.replicas
        ),
        "statefulset": lambda: (
            kube.apps.read_namespaced_stateful_set_scale(name, namespace).spec.replicas
        ),
    }
    patches: dict[str, Callable[[int], Any]] = {
        "rollout": lambda n: rollouts.scale(kube.api, namespace, name, n),
        "deployment": lambda n: kube.apps.patch_namespaced_deployment_scale(
            name, namespace, {"spec": {"replicas": n}}
        ),
        "statefulset": lambda n: kube.apps.patch_namespaced_stateful_set_scale(
            name, namespace, {"spec": {"replicas": n}}
        ),
    }
    before: dict[str, int] = {}

    def inject() -> None:
        before["replicas"] = reads[kind]()
        patches[kind](0)

    def remove() -> None:
        patches[kind](before["replicas"])
        wait_workloads_ready(kube, environment)
        # New engine-api pods are Ready before every node's policy engine lets the
        # environment's clients in: until then the next fault's reads would be refused.
        client_admitted(kube, environment)

    return Fault(f"{name} scaled to zero", inject, remove, {"namespace": namespace})


def crash_looping_worker(kube: Kube, environment: Environment) -> Fault:
    """A release of engine-worker whose configuration names a secret file that is not there."""
    original: dict[str, Any] = {}

    def inject() -> None:
        deployment = kube.apps.read_namespaced_deployment("engine-worker", environment.namespace)
        env = deployment.spec.template.spec.containers[0].env
        original["env"] = kube.api.sanitize_for_serialization(env)
        broken = [e for e in original["env"] if e["name"] != "ENGINE_DATABASE_URL_FILE"]
        broken.append({"name": "ENGINE_DATABASE_URL_FILE", "value": "/etc/engine/secrets/missing"})
        kube.apps.patch_namespaced_deployment(
            "engine-worker",
            environment.namespace,
            [{"op": "replace", "path": "/spec/template/spec/containers/0/env", "value": broken}],
        )

    def remove() -> None:
        kube.apps.patch_namespaced_deployment(
            "engine-worker",
            environment.namespace,
            [
                {
                    "op": "replace",
                    "path": "/spec/template/spec/containers/0/env",
                    "value": original["env"],
                }
            ],
        )
        wait_workloads_ready(kube, environment)

    return Fault(
        "engine-worker crash-looping",
        inject,
        remove,
        {"namespace": environment.namespace, "container": "engine-worker"},
    )


def table_renamed(kube: Kube, environment: Environment, table: str = "sessions") -> Fault:
    """A table taken away under the engine (a bad migration): requests on it answer 5xx."""
    database = database_name(environment)

    def inject() -> None:
        psql(kube, environment, f"ALTER TABLE {table} RENAME TO {table}_outage", database)

    def remove() -> None:
        psql(kube, environment, f"ALTER TABLE {table}_outage RENAME TO {table}", database)

    return Fault(f"{table} table gone", inject, remove, {"namespace": environment.namespace})


def table_locked(kube: Kube, environment: Environment) -> Fault:
    """Sessions locked again and again (a runaway maintenance job): each read waits up to
    1.5 s behind an exclusive lock, then is answered, so latency rises and nothing fails.
    """
    database = database_name(environment)
    holder: dict[str, threading.Thread] = {}
    cycle = (
        "BEGIN; LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(1.5); COMMIT; "
        "SELECT pg_sleep(0.2);"
    )

    def hold() -> None:
        pod_exec(
            kube.api,
            environment.namespace,
            POSTGRES_POD,
            ["env", f"PGAPPNAME={LOCKER}", *PSQL, "-d", database, "-c", cycle * 150],
            container="postgres",
            timeout=330,
        )

    def inject() -> None:
        holder["thread"] = threading.Thread(target=hold, daemon=True)
        holder["thread"].start()

        def locking() -> bool:
            """The session holds the lock (not merely connected: it could fail after)."""
            out = psql(
                kube,
                environment,
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                f"WHERE a.application_name = '{LOCKER}' AND l.database = a.datid "
                "AND l.relation = 'sessions'::regclass "
                "AND l.mode = 'AccessExclusiveLock' AND l.granted",
                database,
            )
            return out.strip() == "1"

        wait_until(locking, timeout=30, interval=0.5, describe="the sessions table locked")

    def remove() -> None:
        psql(
            kube,
            environment,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE application_name = '{LOCKER}'",
            database,
        )
        holder["thread"].join(timeout=30)

    return Fault("sessions table locked", inject, remove, {"namespace": environment.namespace})


def node_lost(
    kube: Kube,
    provider: ClusterProvider,
    environment: Environment,
    clients: tuple[Environment, ...] = (),
) -> Fault:
    """A worker node powered off; the one chosen runs none of the alerting path. Removed
    when it is back and every one of ``clients`` is served by its engine-api again."""
    alerting_nodes = {
        pod.spec.node_name
        for pod in kube.core.list_namespaced_pod("ce-monitoring").items
        if (pod.metadata.labels or {}).get("app.kubernetes.io/name") in MONITORING_APPS
        or (pod.metadata.labels or {}).get("app") in MONITORING_APPS
    }
    candidates = [name for name in kube.worker_nodes() if name not in alerting_nodes]
    assert candidates, f"every worker runs part of the alerting path ({alerting_nodes})"
    node = candidates[0]

    def inject() -> None:
        provider.power_node(node, on=False)

    def remove() -> None:
        powered_on_at = time.time()
        provider.power_node(node, on=True)
        wait_node_back(kube, provider, node, powered_on_at)
        wait_workloads_ready(kube, environment)
        wait_clients_served(kube, (environment, *clients))

    return Fault(f"node {node} powered off", inject, remove, {"node": node})
