"""Pruning deletes only our objects that the current render no longer has."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from deployer.lower import prune

NS = "ce-dev"


class FakeResource:
    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.deleted: list[str] = []

    def get(self, namespace: str, label_selector: str) -> SimpleNamespace:
        assert namespace == NS and label_selector == "part-of=ce"
        return SimpleNamespace(items=self.items)

    def delete(self, name: str, namespace: str) -> None:
        self.deleted.append(name)


def live(name: str, manager: str) -> Any:
    metadata = {"name": name, "managedFields": [{"manager": manager}]}
    return SimpleNamespace(metadata=SimpleNamespace(name=name, get=metadata.get))


def test_refs_keep_only_the_namespace_objects() -> None:
    documents = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": NS}},
    ]
    assert prune.refs(documents, NS) == {prune.ObjectRef("v1", "Service", "api")}


def test_prune_deletes_stale_objects_we_manage_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configmaps = FakeResource(
        [
            live("engine-config-new", "ce-deployer"),
            live("engine-config-old", "ce-deployer"),
            live("someone-elses", "helm"),
        ]
    )
    empty = FakeResource([])

    def pick(api_version: str, kind: str) -> FakeResource:
        return configmaps if kind == "ConfigMap" else empty

    fake = SimpleNamespace(resources=SimpleNamespace(get=pick))
    monkeypatch.setattr(prune, "DynamicClient", lambda api: fake)
    wanted = {prune.ObjectRef("v1", "ConfigMap", "engine-config-new")}
    removed = prune.prune(object(), NS, wanted, "part-of=ce", "ce-deployer")
    assert configmaps.deleted == ["engine-config-old"]
    assert removed == [prune.ObjectRef("v1", "ConfigMap", "engine-config-old")]
