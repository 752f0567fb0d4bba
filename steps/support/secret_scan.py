"""Where secrets must not be: repository files (a pattern scanner), and any text or image
bytes (an exact search for the environment's real values)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings

from deployer.lower import proc

CHUNK_OVERLAP = 512


def repository_files(root: Path) -> list[Path]:
    """The files git tracks: what a clone, and so an attacker with read access, would get."""
    listed = proc.run(["git", "-C", root, "ls-files", "-z"], timeout=60, describe="git ls-files")
    return [root / name for name in listed.split("\0") if name and (root / name).is_file()]


def scanner_findings(files: Iterable[Path]) -> dict[str, list[str]]:
    """detect-secrets' default plugins over ``files``: {file: [secret type (line N)]}."""
    collection = SecretsCollection()
    with default_settings():
        for path in files:
            collection.scan_file(str(path))
    return {
        filename: [f"{found['type']} (line {found['line_number']})" for found in results]
        for filename, results in collection.json().items()
    }


def values_in_text(text: str, values: dict[str, str]) -> list[str]:
    """Names of the secret ``values`` that occur verbatim in ``text``."""
    return sorted(name for name, value in values.items() if value and value in text)


def values_in_chunks(chunks: Iterator[bytes], values: dict[str, str]) -> list[str]:
    """Names of the ``values`` found in a byte stream (e.g. an image archive), chunk by chunk."""
    wanted = {name: value.encode() for name, value in values.items() if value}
    found: set[str] = set()
    tail = b""
    for chunk in chunks:
        window = tail + chunk
        found |= {name for name, value in wanted.items() if value in window}
        tail = window[-CHUNK_OVERLAP:]
    return sorted(found)
