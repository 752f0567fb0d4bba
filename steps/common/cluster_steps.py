"""Steps about the cluster itself: reachability, nodes, a namespace per scenario."""

from __future__ import annotations

import uuid

import pytest
from pytest_bdd import given, parsers, then

from deployer.lower.kube import node_states
from steps.support.kube import Kube
from steps.support.provider import ClusterProvider
from steps.support.workloads import assets_configmap


@given("a running cluster", target_fixture="cluster")
def _(cluster_provider: ClusterProvider, kube: Kube) -> ClusterProvider:
    kube.core.get_api_resources()  # fails fast if the API server is unreachable
    return cluster_provider


@given("a fresh namespace", target_fixture="namespace")
def _(kube: Kube, request: pytest.FixtureRequest) -> str:
    """A namespace for this scenario only, with the probe scripts, deleted afterwards."""
    name = f"ce-test-{uuid.uuid4().hex[:8]}"
    kube.create_namespace(name, {"ce.test/suite": "acceptance"})
    request.addfinalizer(
        lambda: kube.core.delete_namespace(
            name, grace_period_seconds=0, propagation_policy="Background"
        )
    )
    kube.create(name, assets_configmap())
    return name


@then("every node is Ready")
def _(kube: Kube) -> None:
    states = node_states(kube.api)
    not_ready = [state.name for state in states if not state.ready]
    assert states, "the cluster reports no nodes"
    assert not not_ready, f"nodes not Ready: {not_ready}"


@then(parsers.parse("there are at least {count:d} worker nodes"))
def _(kube: Kube, count: int) -> None:
    workers = [s.name for s in node_states(kube.api) if "control-plane" not in s.roles]
    assert len(workers) >= count, f"expected at least {count} workers, found {workers}"
