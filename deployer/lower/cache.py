"""Content-addressed cache keys: the same inputs give the same key, so a warm
run finds its outputs and a changed pin rebuilds only what depends on it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path


def digest_files(update: Callable[[bytes], object], root: Path, files: Iterable[Path]) -> None:
    """Feed relative path, mode and content of each file (sorted) to ``update``."""
    for path in sorted(files):
        update(str(path.relative_to(root)).encode() + b"\0")
        update(str(path.stat().st_mode & 0o777).encode() + b"\0")
        update(path.read_bytes() + b"\0")


def tree_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def cache_key(*parts: str | bytes, trees: Iterable[Path] = ()) -> str:
    """A short hex key over strings/bytes and the files of the given trees."""
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part if isinstance(part, bytes) else part.encode())
        hasher.update(b"\x1f")
    for tree in trees:
        digest_files(hasher.update, tree, tree_files(tree))
    return hasher.hexdigest()[:16]
