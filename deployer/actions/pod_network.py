"""The pod network converged: every node's kube-router knows every node's pod subnet.

kube-router masquerades a pod's traffic to any address outside the pod subnets it
knows (``kube-router-pod-subnets``). A run once came up with the control plane's set
holding only its own subnet, long after the workers joined: every connection from a
control-plane pod to a worker pod (Prometheus' scrapes, the suite's clients) then
arrived from the node's address and the engine's NetworkPolicies refused it. So the
bring-up checks each node's set, restarts a kube-router that stays behind, and fails
if it still does.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from kubernetes import client
from kubernetes.client import ApiClient

from deployer.lower.docker_client import DockerClient
from deployer.lower.kube import api_client
from deployer.lower.waiting import WaitTimeout, wait_until

log = logging.getLogger(__name__)

POD_SUBNETS_SET = "kube-router-pod-subnets"
KUBE_ROUTER = "k8s-app=kube-router"
CONVERGE_S = 30.0  # kube-router adds a joining node's subnet within seconds
AFTER_RESTART_S = 90.0
MEMBER = re.compile(r"^(\d+\.\d+\.\d+\.\d+/\d+)\b", re.MULTILINE)


def node_subnets(api: ApiClient) -> dict[str, set[str]]:
    """Each node's pod subnets, as the API server assigned them."""
    return {
        node.metadata.name: set(node.spec.pod_cid_rs or [node.spec.pod_cidr])
        for node in client.CoreV1Api(api).list_node().items
        if node.spec.pod_cidr
    }


def known_subnets(docker: DockerClient, node: str) -> set[str]:
    """The pod subnets ``node``'s kube-router does not masquerade to."""
    code, output = docker.exec_in(node, ["ipset", "list", POD_SUBNETS_SET])
    return set(MEMBER.findall(output.decode(errors="replace"))) if code == 0 else set()


def missing(api: ApiClient, docker: DockerClient) -> dict[str, set[str]]:
    """Per node (kind names its node containers after its nodes), the subnets it lacks."""
    subnets = node_subnets(api)
    wanted = set().union(*subnets.values()) if subnets else set()
    gaps = {node: wanted - known_subnets(docker, node) for node in subnets}
    return {node: gap for node, gap in gaps.items() if gap}


def wait_converged(kubeconfig: Path, docker: DockerClient) -> None:
    """Wait until every node knows every pod subnet; restart the kube-router of a node
    that does not within CONVERGE_S, then wait again."""
    api = api_client(kubeconfig)
    gaps: dict[str, set[str]] = {}

    def converged() -> bool:
        gaps.clear()
        gaps.update(missing(api, docker))
        return not gaps

    try:
        _, seconds = wait_until(
            converged, timeout=CONVERGE_S, interval=2, describe="every node's pod subnets"
        )
        log.info("   pod network converged after %.0fs", seconds)
        return
    except WaitTimeout:
        pass
    core = client.CoreV1Api(api)
    for node, gap in sorted(gaps.items()):
        log.warning(
            "   kube-router on %s does not know pod subnets %s: restarting it",
            node,
            ", ".join(sorted(gap)),
        )
        for pod in core.list_namespaced_pod(
            "kube-system", label_selector=KUBE_ROUTER, field_selector=f"spec.nodeName={node}"
        ).items:
            core.delete_namespaced_pod(pod.metadata.name, "kube-system")
    _, seconds = wait_until(
        converged, timeout=AFTER_RESTART_S, interval=2, describe="every node's pod subnets"
    )
    log.info("   pod network converged %.0fs after restarting kube-router", seconds)
