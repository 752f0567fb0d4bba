"""Argo Rollouts: its install on our image, how a Rollout's state is read, and what a
deploy does when the controller aborts a release."""

from typing import Any

import pytest

from deployer.actions import delivery, deploy
from deployer.actions.engine_images import EngineImages
from deployer.errors import ClusterError, ReleaseRolledBack
from deployer.lower import rollouts
from deployer.lower.rollouts import RolloutState, state_of


def upstream() -> list[dict[str, Any]]:
    container = {"name": "argo-rollouts", "image": "quay.io/argoproj/argo-rollouts:latest"}
    return [
        {"kind": "CustomResourceDefinition", "metadata": {"name": "rollouts.argoproj.io"}},
        {"kind": "ClusterRole", "metadata": {"name": "argo-rollouts"}},
        {
            "kind": "Deployment",
            "metadata": {"name": "argo-rollouts"},
            "spec": {"template": {"spec": {"containers": [container]}}},
        },
    ]


def test_the_controller_runs_our_image_in_its_namespace_as_non_root() -> None:
    documents = delivery.adapt(upstream(), "ce.local/argo-rollouts:v1.10.2")
    assert documents[0]["kind"] == "Namespace"
    by_kind = {d["kind"]: d for d in documents}
    assert "namespace" not in by_kind["ClusterRole"]["metadata"]
    controller = by_kind["Deployment"]
    assert controller["metadata"]["namespace"] == delivery.NAMESPACE
    pod = controller["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == "ce.local/argo-rollouts:v1.10.2"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["resources"]["requests"]


def rollout(status: dict[str, Any], generation: int = 2) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "spec": {"replicas": 3}, "status": status}


def test_a_rollout_is_healthy_only_once_it_has_seen_the_latest_template() -> None:
    status = {"observedGeneration": "2", "workloadObservedGeneration": "7", "phase": "Healthy"}
    assert state_of(rollout(status), template_generation=7).healthy
    assert not state_of(rollout(status), template_generation=8).healthy  # not seen yet
    assert not state_of(rollout(status, generation=3), template_generation=7).healthy


def test_an_aborted_rollout_is_a_rollback() -> None:
    status = {
        "observedGeneration": "2",
        "phase": "Degraded",
        "abort": True,
        "message": "RolloutAborted: ProgressDeadlineExceeded",
    }
    state = state_of(rollout(status), template_generation=None)
    assert state.rolled_back and not state.healthy
    assert not state_of(rollout({**status, "abort": False}), None).rolled_back


ABORTED = RolloutState("Degraded", "RolloutAborted: canary-5xx failed", True, True, "a", 3)
HEALTHY = RolloutState("Healthy", "", False, True, "a", 3)
GOOD = EngineImages(api="ce.local/engine-api:1-good", revision="good")
BAD = EngineImages(api="ce.local/engine-api:1-bad", revision="bad")


def test_an_aborted_release_puts_the_previous_one_back_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    applied: list[str] = []
    monkeypatch.setattr(deploy, "render", lambda _p, _k, _e, images: [{"kind": images.api}])
    monkeypatch.setattr(deploy, "apply", lambda _t, docs: applied.extend(d["kind"] for d in docs))
    monkeypatch.setattr(deploy, "wait_for_rollout", lambda _t, _ns, **_: HEALTHY)
    target = deploy.Target(kubeconfig=None, kubectl=None)  # type: ignore[arg-type]
    with pytest.raises(ReleaseRolledBack) as raised:
        deploy.restore(None, "staging", target, BAD, GOOD, ABORTED, 0.0)  # type: ignore[arg-type]
    assert applied == [GOOD.api]
    assert "canary-5xx" in str(raised.value) and raised.value.previous == GOOD.api


def test_a_first_release_aborted_has_nothing_to_go_back_to() -> None:
    target = deploy.Target(kubeconfig=None, kubectl=None)  # type: ignore[arg-type]
    with pytest.raises(ClusterError, match="nothing to roll back to"):
        deploy.restore(None, "dev", target, BAD, None, ABORTED, 0.0)  # type: ignore[arg-type]


def test_putting_the_stable_release_back_is_not_settled_by_the_abort_it_clears(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The controller reports the old abort, observed, a moment before it clears it."""
    seen = iter([ABORTED, HEALTHY])
    monkeypatch.setattr(deploy, "_kubectl", lambda *_a, **_k: "")
    monkeypatch.setattr(deploy, "api_client", lambda _k: None)
    monkeypatch.setattr(rollouts, "state", lambda *_a: next(seen))
    target = deploy.Target(kubeconfig=None, kubectl=None)  # type: ignore[arg-type]
    assert deploy.wait_for_rollout(target, "ce-staging", settle_on_abort=False) is HEALTHY
    seen = iter([ABORTED])
    assert deploy.wait_for_rollout(target, "ce-staging") is ABORTED
