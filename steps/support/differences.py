"""Compare two environments' objects field by field, ignoring the allowed differences."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Any

import yaml

HASH_SUFFIX = re.compile(r"-[a-z0-9]{10}$")  # kustomize's generated ConfigMap suffix


def load_allowed(path: Path) -> list[str]:
    patterns: list[str] = yaml.safe_load(path.read_text())
    return patterns


def identity(document: dict[str, Any]) -> str:
    name = document["metadata"]["name"]
    if document["kind"] == "ConfigMap":
        name = HASH_SUFFIX.sub("", name)
    if document["kind"] == "Namespace":
        name = "*"
    return f"{document['kind']}/{name}"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list):
        flat = {}
        for index, item in enumerate(value):
            flat.update(flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    return {prefix: value}


def differences(
    first: list[dict[str, Any]], second: list[dict[str, Any]], allowed: list[str]
) -> list[str]:
    """Every differing field ("Kind/name:path a != b") not matched by an allowed pattern."""
    left = {identity(doc): flatten(doc) for doc in first}
    right = {identity(doc): flatten(doc) for doc in second}
    found = [f"{key}: only in one environment" for key in sorted(set(left) ^ set(right))]
    for key in sorted(set(left) & set(right)):
        for path in sorted(set(left[key]) | set(right[key])):
            a, b = left[key].get(path), right[key].get(path)
            if a == b:
                continue
            field = f"{key}:{path}"
            if not any(fnmatch.fnmatchcase(field, pattern) for pattern in allowed):
                found.append(f"{field}: {a!r} != {b!r}")
    return found
