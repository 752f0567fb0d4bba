"""The node image's own files agree with the cluster they are built for."""

import yaml

from deployer.settings import default_paths


def test_the_networks_a_node_contains_are_the_clusters() -> None:
    """The entrypoint refuses pod and Service addresses it cannot route yet; a drift
    from kind's networking would leave a network uncontained, or refuse a wrong one."""
    paths = default_paths()
    networking = yaml.safe_load((paths.repo / "infra" / "kind" / "cluster.yaml").read_text())[
        "networking"
    ]
    listed = dict(
        line.split()
        for line in (paths.node_image_files / "etc" / "ce-node" / "cluster-networks")
        .read_text()
        .splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert listed == {"pods": networking["podSubnet"], "services": networking["serviceSubnet"]}
