"""Argo Rollouts' Rollout objects, read through the Kubernetes API (no kubectl plugin)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "rollouts"


@dataclass(frozen=True)
class RolloutState:
    """Where a Rollout stands, as its controller reports it."""

    phase: str  # Healthy, Progressing, Paused or Degraded
    message: str
    aborted: bool
    observed: bool  # the controller has seen the latest spec and the Deployment's template
    stable_hash: str
    desired: int

    @property
    def healthy(self) -> bool:
        return self.observed and self.phase == "Healthy"

    @property
    def rolled_back(self) -> bool:
        """Aborted: the canary is scaled away and the stable release serves alone."""
        return self.observed and self.aborted and self.phase == "Degraded"


def read(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return found


def state(api: client.ApiClient, namespace: str, name: str) -> RolloutState | None:
    """The Rollout's state, or None if there is no such Rollout."""
    rollout = read(api, namespace, name)
    if rollout is None:
        return None
    ref = rollout["spec"].get("workloadRef")
    template_generation = None
    if ref and ref.get("kind") == "Deployment":
        deployment = client.AppsV1Api(api).read_namespaced_deployment(ref["name"], namespace)
        template_generation = deployment.metadata.generation
    return state_of(rollout, template_generation)


def state_of(rollout: dict[str, Any], template_generation: int | None) -> RolloutState:
    """A Rollout object's state; ``template_generation`` is the generation of the
    Deployment it takes its pod template from (workloadRef), if any."""
    status = rollout.get("status", {})
    observed = str(status.get("observedGeneration", "")) == str(rollout["metadata"]["generation"])
    if template_generation is not None:
        observed = observed and str(status.get("workloadObservedGeneration", "")) == str(
            template_generation
        )
    return RolloutState(
        phase=status.get("phase", ""),
        message=status.get("message", ""),
        aborted=bool(status.get("abort")),
        observed=observed,
        stable_hash=status.get("stableRS", ""),
        desired=int(rollout["spec"].get("replicas", 1)),
    )


def stable_images(api: client.ApiClient, namespace: str, name: str) -> dict[str, str]:
    """Container name -> image of the release the Rollout considers stable ({} if none)."""
    rollout = read(api, namespace, name)
    stable = (rollout or {}).get("status", {}).get("stableRS", "")
    if not stable:
        return {}
    try:
        replica_set = client.AppsV1Api(api).read_namespaced_replica_set(
            f"{name}-{stable}", namespace
        )
    except ApiException as error:
        if error.status == 404:
            return {}
        raise
    return {c.name: c.image for c in replica_set.spec.template.spec.containers}


def scale(api: client.ApiClient, namespace: str, name: str, replicas: int) -> None:
    client.CustomObjectsApi(api).patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": {"replicas": replicas}}
    )
