"""A deploy keeps the replica count an autoscaler chose (within its bounds)."""

from typing import Any

from deployer.actions.deploy import keep_autoscaled_replicas


def documents(replicas: int = 2) -> list[dict[str, Any]]:
    meta = {"name": "engine-worker", "namespace": "ce-production"}
    return [
        {"kind": "Deployment", "metadata": dict(meta), "spec": {"replicas": replicas}},
        {
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "engine-worker", "namespace": "ce-production"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "engine-worker"},
                "minReplicas": 2,
                "maxReplicas": 6,
            },
        },
        {
            "kind": "Deployment",
            "metadata": {"name": "other", "namespace": "ce-production"},
            "spec": {"replicas": 1},
        },
    ]


def test_a_scaled_out_deployment_keeps_its_replicas() -> None:
    docs = documents()
    keep_autoscaled_replicas(docs, lambda _ns, _kind, name: 5)
    assert docs[0]["spec"]["replicas"] == 5
    assert docs[2]["spec"]["replicas"] == 1  # not autoscaled: the manifest rules


def test_the_kept_count_stays_within_the_autoscalers_bounds() -> None:
    for live, kept in ((0, 2), (9, 6)):
        docs = documents()
        keep_autoscaled_replicas(docs, lambda _ns, _kind, _name, n=live: n)
        assert docs[0]["spec"]["replicas"] == kept


def test_a_first_deploy_starts_from_the_manifest() -> None:
    docs = documents(replicas=2)
    keep_autoscaled_replicas(docs, lambda _ns, _kind, _name: None)
    assert docs[0]["spec"]["replicas"] == 2


def test_an_autoscaled_rollout_keeps_its_replicas() -> None:
    """engine-api's HPA scales its Argo Rollout, not the Deployment holding the template."""
    meta = {"name": "engine-api", "namespace": "ce-production"}
    docs: list[dict[str, Any]] = [
        {"kind": "Deployment", "metadata": dict(meta), "spec": {"replicas": 0}},
        {"kind": "Rollout", "metadata": dict(meta), "spec": {"replicas": 3}},
        {
            "kind": "HorizontalPodAutoscaler",
            "metadata": dict(meta),
            "spec": {
                "scaleTargetRef": {"kind": "Rollout", "name": "engine-api"},
                "minReplicas": 3,
                "maxReplicas": 6,
            },
        },
    ]
    asked: list[str] = []

    def live(_ns: str, kind: str, _name: str) -> int:
        asked.append(kind)
        return 5

    keep_autoscaled_replicas(docs, live)
    assert docs[1]["spec"]["replicas"] == 5
    assert docs[0]["spec"]["replicas"] == 0  # the template holder is not what the HPA scales
    assert asked == ["Rollout"]
