"""An existing cluster of the same name: wait for a live run, delete an interrupted run's
leftover, refuse a kept one (a killed nightly run must not block the next forever)."""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deployer.actions import cluster, cluster_lease
from deployer.errors import ConfigError
from deployer.settings import Paths, default_paths


@dataclass
class FakeKind:
    existing: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def clusters(self) -> list[str]:
        return list(self.existing)

    def delete(self, name: str, kubeconfig: Path | None = None) -> None:
        self.deleted.append(name)
        self.existing.remove(name)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(repo=default_paths().repo, cache=tmp_path)


def record(paths: Paths, name: str, ephemeral: bool, age_seconds: float) -> None:
    cluster_lease.write_record(paths, name, ephemeral)
    path = cluster_lease.record_path(paths, name)
    data = json.loads(path.read_text())
    data["created"] = time.time() - age_seconds
    path.write_text(json.dumps(data))


def no_live_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_lease, "live_holder", lambda _kubeconfig: None)


def assert_refused_and_left(paths: Paths, name: str, match: str) -> None:
    kind = FakeKind(existing=[name])
    with pytest.raises(ConfigError, match=match):
        cluster.clear_the_way(paths, name, kind)  # type: ignore[arg-type]
    assert kind.deleted == []


def test_an_interrupted_runs_leftover_is_deleted(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_live_run(monkeypatch)
    record(paths, "ce-acceptance", ephemeral=True, age_seconds=3600)
    kind = FakeKind(existing=["ce-acceptance"])
    cluster.clear_the_way(paths, "ce-acceptance", kind)  # type: ignore[arg-type]
    assert kind.deleted == ["ce-acceptance"]
    assert cluster_lease.read_record(paths, "ce-acceptance") is None


@pytest.mark.parametrize("kept", ["kept", "no record"])
def test_a_kept_or_unknown_cluster_is_refused_and_left_alone(
    paths: Paths, monkeypatch: pytest.MonkeyPatch, kept: str
) -> None:
    no_live_run(monkeypatch)
    if kept == "kept":
        record(paths, "ce", ephemeral=False, age_seconds=3600)
    assert_refused_and_left(paths, "ce", "already exists and was kept")


def test_a_live_run_is_waited_for_and_its_cluster_never_deleted(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(paths, "ce-acceptance", ephemeral=True, age_seconds=3600)
    kind = FakeKind(existing=["ce-acceptance"])
    polls: list[int] = []

    def other_run_ends_after_three_polls(_kubeconfig: Path) -> str | None:
        polls.append(1)
        if len(polls) >= 3:
            kind.existing.clear()  # the other run deleted its cluster at its end
            return None
        return "ci/pid-1/abcd"

    monkeypatch.setattr(cluster_lease, "live_holder", other_run_ends_after_three_polls)
    monkeypatch.setattr(cluster_lease, "POLL_SECONDS", 0.01)
    cluster.clear_the_way(paths, "ce-acceptance", kind)  # type: ignore[arg-type]
    assert kind.deleted == []
    assert len(polls) >= 3


def test_a_cluster_still_being_created_is_waited_for(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No lease yet (the API is not up) but made minutes ago for a run: not a leftover."""
    no_live_run(monkeypatch)
    record(paths, "ce-acceptance", ephemeral=True, age_seconds=60)
    monkeypatch.setattr(cluster_lease, "WAIT_FOR_OTHER_RUN_SECONDS", 0.2)
    monkeypatch.setattr(cluster_lease, "POLL_SECONDS", 0.01)
    assert_refused_and_left(paths, "ce-acceptance", "still in use by another run")


def test_down_refuses_a_cluster_another_run_uses(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    kind = FakeKind(existing=["ce"])
    monkeypatch.setattr(cluster, "built_tools", lambda _paths: (kind, Path("/bin/false")))
    monkeypatch.setattr(cluster_lease, "live_holder", lambda _kubeconfig: "ci/pid-1/abcd")
    with pytest.raises(ConfigError, match="in use by a run"):
        cluster.down(paths, "ce")
    assert cluster.down(paths, "ce", owner=True)
    assert kind.deleted == ["ce"]


def test_a_run_ending_does_not_remove_a_newer_runs_record(paths: Paths) -> None:
    record(paths, "ce-acceptance", ephemeral=True, age_seconds=5)
    path = cluster_lease.record_path(paths, "ce-acceptance")
    data = json.loads(path.read_text())
    data["holder"] = "another-run"
    path.write_text(json.dumps(data))
    cluster_lease.forget(paths, "ce-acceptance", only_if_mine=True)
    assert cluster_lease.read_record(paths, "ce-acceptance") is not None
