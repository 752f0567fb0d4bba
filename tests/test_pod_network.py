"""The bring-up's pod-network check: which node's kube-router lacks which pod subnet."""

from __future__ import annotations

from typing import Any, cast

import pytest

from deployer.actions import pod_network
from deployer.lower.docker_client import DockerClient

IPSET = b"""Name: kube-router-pod-subnets
Type: hash:net
Members:
10.244.0.0/24 timeout 0
"""
FULL = IPSET + b"10.244.1.0/24 timeout 0\n10.244.2.0/24 timeout 0\n"


class FakeDocker:
    """Each node container's ipset listing (the control plane's stale, as seen once)."""

    def __init__(self, listings: dict[str, tuple[int, bytes]]) -> None:
        self.listings = listings

    def exec_in(self, name: str, command: list[str]) -> tuple[int, bytes]:
        assert command == ["ipset", "list", pod_network.POD_SUBNETS_SET]
        return self.listings[name]


def test_a_node_that_knows_only_its_own_subnet_is_named_with_what_it_lacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subnets = {"cp": {"10.244.0.0/24"}, "w1": {"10.244.1.0/24"}, "w2": {"10.244.2.0/24"}}
    monkeypatch.setattr(pod_network, "node_subnets", lambda api: subnets)
    docker = FakeDocker({"cp": (0, IPSET), "w1": (0, FULL), "w2": (1, b"no such set")})
    gaps = pod_network.missing(cast(Any, None), cast(DockerClient, docker))
    assert gaps == {
        "cp": {"10.244.1.0/24", "10.244.2.0/24"},
        "w2": {"10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"},
    }
    converged = FakeDocker(dict.fromkeys(subnets, (0, FULL)))
    assert pod_network.missing(cast(Any, None), cast(DockerClient, converged)) == {}
