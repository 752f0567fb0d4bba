"""Bad input to `cluster up` is refused before anything is created."""

import socket
from pathlib import Path

import pytest
import yaml

from deployer.actions import cluster
from deployer.errors import ConfigError
from deployer.settings import Paths, default_paths


@pytest.mark.parametrize("name", ["", "UPPER", "has_underscore", "-leading", "x" * 40])
def test_bad_cluster_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="not valid"):
        cluster.ClusterRequest(name=name).validate()


@pytest.mark.parametrize("workers", [-1, 7])
def test_worker_count_is_bounded(workers: int) -> None:
    with pytest.raises(ConfigError, match="--workers"):
        cluster.ClusterRequest(workers=workers).validate()


def test_a_port_in_use_is_refused(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        paths = Paths(repo=default_paths().repo, cache=tmp_path)
        with pytest.raises(ConfigError, match=f"port {port} .* already in use"):
            cluster.preflight(paths, cluster.ClusterRequest(api_port=port))


def test_kind_config_binds_loopback_and_lists_nodes(tmp_path: Path) -> None:
    paths = Paths(repo=default_paths().repo, cache=tmp_path)
    config = yaml.safe_load(cluster.render_kind_config(paths, cluster.ClusterRequest(workers=3)))
    assert config["networking"]["apiServerAddress"] == "127.0.0.1"
    assert [node["role"] for node in config["nodes"]] == ["control-plane"] + ["worker"] * 3
