"""Steps about dynamic storage provisioning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_bdd import parsers, then, when

from deployer.lower.waiting import wait_until
from steps.support.kube import Kube

MARKER = "written-by-the-acceptance-suite"


@dataclass(frozen=True)
class ClaimUse:
    claim: str
    pod: str


def claim_manifest(name: str, size: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }


def writer_pod(name: str, claim: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "writer",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", f"echo {MARKER} > /data/marker && sleep 3600"],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


@when(
    parsers.parse("a pod writes to a new {size} persistent volume claim"),
    target_fixture="claim_use",
)
def _(kube: Kube, namespace: str, toolbox_image: str, size: str) -> ClaimUse:
    kube.create(namespace, claim_manifest("data", size))
    kube.create(namespace, writer_pod("writer", "data", toolbox_image))
    kube.wait_pods_ready(namespace, ["writer"], timeout=180)
    return ClaimUse("data", "writer")


@then("the claim is bound to a dynamically provisioned volume")
def _(kube: Kube, namespace: str, claim_use: ClaimUse) -> None:
    claim, _ = wait_until(
        lambda: (
            (c := kube.core.read_namespaced_persistent_volume_claim(claim_use.claim, namespace))
            and c.status.phase == "Bound"
            and c
        ),
        timeout=60,
        interval=1,
        describe="the claim to be Bound",
    )
    volume = kube.core.read_persistent_volume(claim.spec.volume_name)
    provisioner = (volume.metadata.annotations or {}).get("pv.kubernetes.io/provisioned-by")
    assert provisioner, f"volume {volume.metadata.name} was not dynamically provisioned"


@then("the pod reads back what it wrote")
def _(kube: Kube, namespace: str, claim_use: ClaimUse) -> None:
    code, output = kube.exec(namespace, claim_use.pod, ["cat", "/data/marker"])
    assert code == 0 and output.strip() == MARKER, f"read back {output!r} (exit {code})"
