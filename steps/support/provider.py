"""Where the cluster comes from: an ephemeral kind cluster, or one the user already has.

The steps ask a provider for capabilities; something a provider cannot do
(e.g. reading etcd on a managed control plane) is reported as not applicable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deployer.actions import cluster as cluster_actions
from deployer.actions import cluster_lease
from deployer.actions.engine_images import EngineImages
from deployer.errors import DeployerError
from deployer.lower.docker_client import DockerClient
from deployer.settings import Paths

log = logging.getLogger(__name__)

NODE_SHELL = "node-shell"  # run commands on nodes (docker exec into kind nodes)
ETCD_ACCESS = "etcd-access"  # read raw values from etcd on the control plane
ENCRYPTION_KEYS = "encryption-keys"  # the suite holds the API server's encryption config
NODE_POWER = "node-power"  # stop and start a node for real (kind: its container)
LOCAL_IMAGES = "local-images"  # images built on this machine reach the nodes (kind load)


@dataclass
class ClusterProvider:
    """A reachable cluster plus what this suite may do to it."""

    name: str
    kubeconfig: Path
    kind_name: str | None = None  # set when the cluster is a kind cluster we can manage
    delete_on_teardown: bool = False
    capabilities: frozenset[str] = field(default_factory=frozenset)
    seconds_to_ready: float | None = None
    context: str | None = None
    engine_images: EngineImages | None = None  # a new kind cluster's, on its workers already
    lease: cluster_lease.RunLease | None = None  # renewed while this run uses a kind cluster

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    def require(self, capability: str, why: str) -> None:
        """Stop the scenario as *not applicable* (never passed) when the provider lacks it."""
        if not self.can(capability):
            pytest.skip(f"not applicable on {self.name}: {why} needs {capability}")

    def node_exec(self, node: str, command: list[str]) -> tuple[int, bytes]:
        """Run a command on a node itself (kind: the node's container)."""
        self.require(NODE_SHELL, f"running {command[0]} on node {node}")
        return DockerClient().exec_in(node, command)

    def power_node(self, node: str, on: bool) -> None:
        """Stop a node as a power loss would (kind: stop its container), or start it again."""
        self.require(NODE_POWER, f"{'starting' if on else 'stopping'} node {node}")
        DockerClient().power(node, on)

    def cluster_dir(self, paths: Paths) -> Path:
        """The deployer's folder for this cluster (keys, kind config); kind clusters only."""
        self.require(ENCRYPTION_KEYS, "rotating the Secret encryption key")
        assert self.kind_name is not None
        return cluster_actions.cluster_dir(paths, self.kind_name)

    def export_logs(self, paths: Paths, destination: Path) -> None:
        if self.kind_name is None:
            return
        handle = cluster_actions.existing(paths, self.kind_name)
        try:
            handle.kind.export_logs(self.kind_name, destination)
        except DeployerError as error:
            log.warning("could not export cluster logs: %s", error)

    def teardown(self, paths: Paths) -> None:
        if self.lease is not None:
            self.lease.stop(delete=True)
        if self.delete_on_teardown and self.kind_name is not None:
            cluster_actions.down(paths, self.kind_name, owner=True)


def kind_provider(
    paths: Paths, name: str, workers: int, reuse: bool, keep: bool, with_engine: bool = False
) -> ClusterProvider:
    """Create (or with ``reuse`` attach to) a kind cluster built by the deployer; with
    ``with_engine`` a new cluster comes with the engine's images on its workers."""
    capabilities = frozenset({NODE_SHELL, ETCD_ACCESS, ENCRYPTION_KEYS, NODE_POWER, LOCAL_IMAGES})
    if reuse:
        try:
            handle = cluster_actions.existing(paths, name)
        except DeployerError:
            handle = None
        kind = handle.kind if handle is not None else None
        if (
            handle is not None
            and kind is not None
            and cluster_lease.await_no_live_run(
                paths, name, handle.kubeconfig, lambda: name in kind.clusters()
            )
        ):
            log.info("reusing kind cluster %r", name)
            cluster_lease.mark_kept(paths, name)
            lease = cluster_lease.RunLease(handle.kubeconfig).start()
            return ClusterProvider(
                f"kind:{name}", handle.kubeconfig, name, False, capabilities, lease=lease
            )
    request = cluster_actions.ClusterRequest(
        name=name, workers=workers, with_engine=with_engine, ephemeral=not (keep or reuse)
    )
    handle = cluster_actions.up(paths, request)
    return ClusterProvider(
        f"kind:{name}",
        handle.kubeconfig,
        name,
        delete_on_teardown=not (keep or reuse),
        capabilities=capabilities,
        seconds_to_ready=handle.seconds_to_ready,
        engine_images=handle.engine_images,
        lease=cluster_lease.RunLease(handle.kubeconfig).start(),
    )


def existing_provider(kubeconfig: Path, context: str | None) -> ClusterProvider:
    """Any conformant cluster: nothing is created or deleted, node access is not assumed."""
    return ClusterProvider(f"existing:{context or 'current-context'}", kubeconfig, context=context)
