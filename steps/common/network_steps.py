"""Steps about pod networking: DNS, cross-node traffic, NetworkPolicy enforcement."""

from __future__ import annotations

import json

from pytest_bdd import given, parsers, then, when

from deployer.lower.waiting import wait_until
from steps.common.workload_steps import WebServers
from steps.support import workloads
from steps.support.kube import Kube
from steps.support.report import RecordFigure


def answers(kube: Kube, namespace: str, client_pod: str, target_ip: str) -> str | None:
    """The pod name the web server at ``target_ip`` reports, or None if it did not answer."""
    code, output = kube.exec(
        namespace,
        client_pod,
        ["curl", "-s", "-m", "3", f"http://{target_ip}:{workloads.WEB_PORT}/"],
        timeout=15,
    )
    if code != 0:
        return None
    try:
        pod: str = json.loads(output)["pod"]
    except (ValueError, KeyError):
        return None
    return pod


def cross_node_matrix(kube: Kube, namespace: str, servers: WebServers) -> dict[str, bool]:
    """For every (client, server) pair on different nodes: did the server answer as itself?"""
    results = {}
    for client_pod in servers.pods:
        for server in servers.pods:
            if server.node == client_pod.node:
                continue
            reply = answers(kube, namespace, client_pod.name, server.ip)
            results[f"{client_pod.node}->{server.node}"] = reply == server.name
    return results


@then(parsers.parse('a pod on each worker resolves the service "{service}" through cluster DNS'))
def _(kube: Kube, namespace: str, web_servers: WebServers, service: str) -> None:
    cluster_ip = kube.core.read_namespaced_service(service, namespace).spec.cluster_ip
    for pod in web_servers.pods:
        for name in (service, f"{service}.{namespace}.svc.cluster.local"):
            code, output = kube.exec(namespace, pod.name, ["getent", "hosts", name])
            assert code == 0, f"{name} did not resolve from {pod.name} on {pod.node}: {output}"
            assert output.split()[0] == cluster_ip, (
                f"{name} resolved to {output.split()[0]} from {pod.node}, expected {cluster_ip}"
            )


@given("every web server answers a client pod on every other worker")
@then("every web server answers a client pod on every other worker")
def _(kube: Kube, namespace: str, web_servers: WebServers, record_figure: RecordFigure) -> None:
    __tracebackhide__ = True
    assert len({pod.node for pod in web_servers.pods}) >= 2, "need web servers on 2+ nodes"

    def all_pairs_answer() -> dict[str, bool]:
        matrix = cross_node_matrix(kube, namespace, web_servers)
        return matrix if matrix and all(matrix.values()) else {}

    matrix, seconds = wait_until(
        all_pairs_answer, timeout=90, interval=2, describe="every cross-node pair to answer"
    )
    record_figure("cross_node_pairs_ok", len(matrix))
    record_figure("seconds_until_all_pairs_answer", round(seconds, 1))


@then("no web server answers a client pod on any other worker")
def _(kube: Kube, namespace: str, web_servers: WebServers, record_figure: RecordFigure) -> None:
    __tracebackhide__ = True
    _, seconds = wait_until(
        lambda: not any(cross_node_matrix(kube, namespace, web_servers).values()),
        timeout=90,
        interval=2,
        describe="every cross-node pair to be blocked",
    )
    record_figure("seconds_to_enforce_deny_policy", round(seconds, 1))


@when("a NetworkPolicy denies all ingress in the namespace")
def _(kube: Kube, namespace: str) -> None:
    kube.create(namespace, workloads.deny_all_ingress())


@when("the NetworkPolicy is removed")
def _(kube: Kube, namespace: str) -> None:
    kube.networking.delete_namespaced_network_policy("deny-all-ingress", namespace)
