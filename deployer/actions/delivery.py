"""The progressive-delivery controller: Argo Rollouts, which rolls a bad engine-api
release back with no human action (R2.5).

Its manifests are the project's own (`manifests/cluster-install` of the module the
controller is built from, so the CRDs always match the binary); the deployer only
points them at the image built here, sets requests and a non-root user, and waits.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from deployer.actions.registry import publish
from deployer.catalog import ARGO_ROLLOUTS_MODULE, ARGO_ROLLOUTS_TOOLCHAIN, argo_rollouts_image
from deployer.errors import ClusterError
from deployer.lower import proc
from deployer.lower.docker_client import DockerClient
from deployer.lower.kube import api_client, unready_workloads
from deployer.lower.waiting import WaitTimeout, wait_until
from deployer.settings import Paths

log = logging.getLogger(__name__)

NAMESPACE = "argo-rollouts"
CONTROLLER = "argo-rollouts"
READY_TIMEOUT = 180
CLUSTER_SCOPED = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace"}


def module_dir(paths: Paths) -> Path:
    """Where the go command keeps the pinned Argo Rollouts module (downloaded if needed)."""
    folder = paths.components / "argo-rollouts"
    output = proc.run(
        ["go", "mod", "download", "-json", ARGO_ROLLOUTS_MODULE],
        cwd=folder,
        env={**os.environ, "GOTOOLCHAIN": ARGO_ROLLOUTS_TOOLCHAIN, "GOFLAGS": "-mod=readonly"},
        timeout=600,
        describe="go mod download argo-rollouts",
    )
    return Path(json.loads(output)["Dir"])


def render(paths: Paths, kubectl: Path, image: str | None = None) -> list[dict[str, Any]]:
    """The controller's cluster install, pointed at the image this machine built (or
    at ``image``, the same one in a registry)."""
    upstream = module_dir(paths) / "manifests" / "cluster-install"
    output = proc.run([kubectl, "kustomize", upstream], timeout=60, describe="kubectl kustomize")
    documents = [doc for doc in yaml.safe_load_all(output) if doc]
    return adapt(documents, image or argo_rollouts_image(paths))


def adapt(documents: list[dict[str, Any]], image: str) -> list[dict[str, Any]]:
    """The upstream install in our namespace, on our image, as a non-root user."""
    for document in documents:
        if document["kind"] not in CLUSTER_SCOPED:
            document["metadata"]["namespace"] = NAMESPACE
        if document["kind"] == "Deployment":
            _use_local_image(document, image)
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {
                "app.kubernetes.io/part-of": "ce-delivery",
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    }
    return [namespace, *documents]


def _use_local_image(deployment: dict[str, Any], image: str) -> None:
    pod = deployment["spec"]["template"]["spec"]
    pod["securityContext"] = {
        **pod.get("securityContext", {}),
        "runAsNonRoot": True,
        "runAsUser": 999,
        "runAsGroup": 999,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for container in pod["containers"]:
        container["image"] = image
        container["imagePullPolicy"] = "IfNotPresent"  # built here, loaded or pushed
        container["resources"] = {
            "requests": {"cpu": "50m", "memory": "96Mi"},
            "limits": {"cpu": "500m", "memory": "384Mi", "ephemeral-storage": "1Gi"},
        }


def install(paths: Paths, kubeconfig: Path, kubectl: Path, image: str | None = None) -> None:
    """Apply the controller and its CRDs (server-side: the Rollout CRD is too large for
    client-side apply's annotation); does not wait."""
    log.info("==> Delivery: Argo Rollouts controller and CRDs")
    documents = render(paths, kubectl, image)
    first = [d for d in documents if d["kind"] in {"Namespace", "CustomResourceDefinition"}]
    rest = [d for d in documents if d not in first]
    apply: list[str | Path] = [kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side"]
    apply += ["--force-conflicts", "--field-manager=ce-deployer", "-f", "-"]
    for batch, what in ((first, "Argo Rollouts CRDs"), (rest, "Argo Rollouts controller")):
        proc.run(
            apply,
            timeout=180,
            input_text=yaml.safe_dump_all(batch),
            describe=f"kubectl apply {what}",
        )


def wait_ready(kubeconfig: Path, started: float | None = None) -> float:
    """Wait until the controller is available; return seconds since ``started``."""
    started = time.monotonic() if started is None else started
    api = api_client(kubeconfig)
    try:
        wait_until(
            lambda: not unready_workloads(api, NAMESPACE),
            timeout=READY_TIMEOUT,
            interval=2,
            describe="the Argo Rollouts controller",
        )
    except WaitTimeout as timeout:
        waiting = ", ".join(unready_workloads(api, NAMESPACE))
        raise ClusterError(f"the Argo Rollouts controller is not available: {waiting}") from timeout
    seconds = time.monotonic() - started
    log.info("   Argo Rollouts controller available after %.0fs", seconds)
    return seconds


def ensure(paths: Paths, kubeconfig: Path, kubectl: Path, registry: str | None = None) -> None:
    """Install the controller where it is missing (a cluster this deployer did not create;
    its image pushed to ``registry`` for that cluster to pull)."""
    api = api_client(kubeconfig)
    try:
        client.ApiextensionsV1Api(api).read_custom_resource_definition("rollouts.argoproj.io")
        client.AppsV1Api(api).read_namespaced_deployment(CONTROLLER, NAMESPACE)
    except client.ApiException as error:
        if error.status != 404:
            raise
        image = None
        if registry:
            local = argo_rollouts_image(paths)
            image = publish(DockerClient(), [local], registry)[local]  # built here
        install(paths, kubeconfig, kubectl, image)
    wait_ready(kubeconfig)
