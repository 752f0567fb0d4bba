"""Delete what an earlier deploy created and the current render no longer has.

Server-side apply only adds and updates; an object removed from an overlay
would live on. We own an object when it carries our part-of label *and* our
field manager wrote it, so objects someone else labelled are never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.dynamic import DynamicClient

log = logging.getLogger(__name__)

# Every namespaced kind an overlay may hold (the Secret is the deployer's own, never pruned).
PRUNABLE_KINDS = (
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
)


@dataclass(frozen=True, order=True)
class ObjectRef:
    api_version: str
    kind: str
    name: str


def refs(documents: Iterable[dict[str, Any]], namespace: str) -> set[ObjectRef]:
    """The rendered objects that live in ``namespace``."""
    return {
        ObjectRef(doc["apiVersion"], doc["kind"], doc["metadata"]["name"])
        for doc in documents
        if doc.get("metadata", {}).get("namespace") == namespace
    }


def owned(item: Any, manager: str) -> bool:
    fields = item.metadata.get("managedFields") or []
    return any(entry.get("manager") == manager for entry in fields)


def prune(
    api: ApiClient, namespace: str, wanted: set[ObjectRef], selector: str, manager: str
) -> list[ObjectRef]:
    """Delete our objects in ``namespace`` that are not in ``wanted``; return what went."""
    dynamic = DynamicClient(api)
    removed: list[ObjectRef] = []
    for api_version, kind in PRUNABLE_KINDS:
        resource = dynamic.resources.get(api_version=api_version, kind=kind)
        for item in resource.get(namespace=namespace, label_selector=selector).items:
            ref = ObjectRef(api_version, kind, item.metadata.name)
            if ref in wanted or not owned(item, manager):
                continue
            log.info("   pruning %s/%s (no longer rendered)", kind, ref.name)
            resource.delete(name=ref.name, namespace=namespace)
            removed.append(ref)
    return sorted(removed)
