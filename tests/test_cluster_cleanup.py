"""A failed `cluster up` deletes what it created unless asked to keep it."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deployer.actions import build, cluster
from deployer.actions.engine_images import EngineImages
from deployer.errors import ClusterError, CommandError
from deployer.settings import Paths, default_paths


@dataclass
class FakeKind:
    binary: Path = Path("/bin/false")
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    fail_create: bool = False

    def clusters(self) -> list[str]:
        return [name for name in self.created if name not in self.deleted]

    def create(self, name: str, image: str, config: Path, kubeconfig: Path, retain: bool) -> None:
        self.created.append(name)
        if self.fail_create:
            raise CommandError(["kind", "create"], "exited with status 1", "kubeadm init failed")

    def delete(self, name: str, kubeconfig: Path | None = None) -> None:
        self.deleted.append(name)


@pytest.fixture
def fake_edges(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Paths, FakeKind]:
    paths = Paths(repo=default_paths().repo, cache=tmp_path)
    kind = FakeKind()
    monkeypatch.setattr(cluster, "ensure_engine", lambda _paths: object())
    monkeypatch.setattr(
        cluster,
        "build_all",
        lambda _paths, _docker: build.BuildReport(
            node_image="ce.local/kind-node:test",
            kind=Path("/bin/false"),
            kubectl=Path("/bin/false"),
        ),
    )
    monkeypatch.setattr(cluster, "Kind", lambda _binary: kind)
    monkeypatch.setattr(cluster, "install_addons", lambda _paths, _handle: None)
    return paths, kind


def test_failure_after_create_deletes_the_cluster(
    fake_edges: tuple[Paths, FakeKind], monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, kind = fake_edges

    def never_ready(_handle: cluster.ClusterHandle, expected_nodes: int) -> None:
        raise CommandError(["wait"], "timed out after 1s")

    monkeypatch.setattr(cluster, "wait_for_nodes", never_ready)
    with pytest.raises(ClusterError, match="did not come up"):
        cluster.up(paths, cluster.ClusterRequest(name="t1"))
    assert kind.deleted == ["t1"]


def test_failed_create_is_cleaned_up(fake_edges: tuple[Paths, FakeKind]) -> None:
    paths, kind = fake_edges
    kind.fail_create = True
    with pytest.raises(ClusterError, match="kubeadm init failed"):
        cluster.up(paths, cluster.ClusterRequest(name="t2"))
    assert kind.deleted == ["t2"]


def test_keep_on_failure_leaves_the_cluster(fake_edges: tuple[Paths, FakeKind]) -> None:
    paths, kind = fake_edges
    kind.fail_create = True
    with pytest.raises(ClusterError, match="--keep-on-failure|kept"):
        cluster.up(paths, cluster.ClusterRequest(name="t3", keep_on_failure=True))
    assert kind.deleted == []


def test_an_existing_cluster_is_not_overwritten(fake_edges: tuple[Paths, FakeKind]) -> None:
    paths, kind = fake_edges
    kind.created.append("t4")
    with pytest.raises(Exception, match="already exists"):
        cluster.up(paths, cluster.ClusterRequest(name="t4"))
    assert kind.deleted == []


@pytest.fixture
def comes_up(fake_edges: tuple[Paths, FakeKind], monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every wait succeeds at once; returns the images `load_images` was given."""
    monkeypatch.setattr(cluster, "wait_for_nodes", lambda _handle, expected_nodes: None)
    monkeypatch.setattr(cluster, "wait_for_system_workloads", lambda _handle: None)
    monkeypatch.setattr(cluster.pod_network, "wait_converged", lambda *_args: None)
    monkeypatch.setattr(cluster.monitoring, "install", lambda *_args: None)
    monkeypatch.setattr(cluster.monitoring, "wait_ready", lambda *_args: None)
    monkeypatch.setattr(cluster.delivery, "install", lambda *_args: None)
    monkeypatch.setattr(cluster.delivery, "wait_ready", lambda *_args: None)
    loaded: list[object] = []
    monkeypatch.setattr(cluster, "load_images", lambda _target, images: loaded.append(images))
    return loaded


def test_the_engine_images_built_meanwhile_go_onto_the_workers(
    fake_edges: tuple[Paths, FakeKind], comes_up: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, _ = fake_edges
    images = EngineImages(api="a:1", worker="w:1", postgres="p:1")
    monkeypatch.setattr(cluster, "build_engine_images", lambda _paths, _docker: images)
    handle = cluster.up(paths, cluster.ClusterRequest(name="t5", with_engine=True))
    assert comes_up == [images]
    assert handle.engine_images is images


def test_an_engine_build_that_fails_does_not_fail_the_cluster(
    fake_edges: tuple[Paths, FakeKind], comes_up: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first deploy builds again and reports the error where it belongs."""
    paths, kind = fake_edges

    def broken(_paths: Paths, _docker: object) -> EngineImages:
        raise CommandError(["docker", "build"], "exited with status 1", "no such file")

    monkeypatch.setattr(cluster, "build_engine_images", broken)
    handle = cluster.up(paths, cluster.ClusterRequest(name="t6", with_engine=True))
    assert handle.engine_images is None
    assert comes_up == []
    assert kind.deleted == []
