"""Evidence bundles for release approvals: a report folder sealed so that any change shows.

Sealing writes MANIFEST.json (every file's SHA-256 and size, plus facts about the
run) and MANIFEST.sig (an Ed25519 signature of the manifest's exact bytes), then
one archive of the whole folder. Verifying checks the signature with a public key
the verifier trusts, then every file against the manifest, and names each file
that was altered, added or removed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from deployer.errors import ConfigError
from deployer.lower import signing

log = logging.getLogger(__name__)

FORMAT = "consciousness-engine-evidence/1"
MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.sig"
ARCHIVE_SUFFIX = ".evidence.tar.gz"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Sealed:
    directory: Path
    archive: Path
    files: int
    signer: str


@dataclass
class Verdict:
    signer: str  # the fingerprint the manifest names
    signature_valid: bool
    altered: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return self.signature_valid and not (self.altered or self.added or self.removed)


def file_digests(directory: Path) -> dict[str, dict[str, Any]]:
    """Every regular file under ``directory`` but the seal itself, by relative path."""
    digests: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if relative in (MANIFEST, SIGNATURE) or path.is_dir():
            continue
        if path.is_symlink() or not path.is_file():
            raise ConfigError(f"{path}: an evidence bundle holds regular files only")
        sha = hashlib.sha256()
        with path.open("rb") as stream:
            while chunk := stream.read(CHUNK):
                sha.update(chunk)
        digests[relative] = {"sha256": sha.hexdigest(), "bytes": path.stat().st_size}
    return digests


def seal(directory: Path, key: signing.SigningKey, facts: dict[str, Any]) -> Sealed:
    """Write the manifest and its signature into ``directory``, then archive it beside it."""
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a report folder")
    files = file_digests(directory)
    manifest = {
        "format": FORMAT,
        "sealed_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "signer": key.fingerprint,
        "facts": facts,
        "files": files,
    }
    data = json.dumps(manifest, indent=1, sort_keys=True, default=str).encode()
    (directory / MANIFEST).write_bytes(data)
    (directory / SIGNATURE).write_text(base64.b64encode(key.sign(data)).decode() + "\n")
    archive = directory.parent / f"{directory.name}{ARCHIVE_SUFFIX}"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(directory, arcname=directory.name)
    log.info("evidence sealed: %d files, signed by %s -> %s", len(files), key.fingerprint, archive)
    return Sealed(directory, archive, len(files), key.fingerprint)


def verify(bundle: Path, public_key: Ed25519PublicKey) -> Verdict:
    """Check a sealed folder or its archive against ``public_key``."""
    if bundle.is_dir():
        return _verify_directory(bundle, public_key)
    if not bundle.is_file():
        raise ConfigError(f"{bundle} does not exist")
    with tempfile.TemporaryDirectory(prefix="ce-evidence-") as scratch:
        try:
            with tarfile.open(bundle, "r:*") as tar:
                tar.extractall(scratch, filter="data")
        except (tarfile.TarError, OSError) as error:
            raise ConfigError(f"{bundle} is not a readable evidence archive: {error}") from None
        tops = list(Path(scratch).iterdir())
        if len(tops) != 1 or not tops[0].is_dir():
            raise ConfigError(f"{bundle} should hold one report folder, not {len(tops)} entries")
        return _verify_directory(tops[0], public_key)


def _verify_directory(directory: Path, public_key: Ed25519PublicKey) -> Verdict:
    try:
        data = (directory / MANIFEST).read_bytes()
        signature = base64.b64decode((directory / SIGNATURE).read_text().strip(), validate=True)
    except FileNotFoundError as missing:
        name = Path(str(missing.filename)).name
        raise ConfigError(f"{directory} is not sealed: {name} is missing") from None
    except (binascii.Error, ValueError):
        signature = b""
    try:
        manifest = json.loads(data)
        recorded: dict[str, dict[str, Any]] = manifest["files"]
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{directory / MANIFEST} is not a manifest: {error}") from None
    verdict = Verdict(
        signer=str(manifest.get("signer", "?")),
        signature_valid=signing.signature_valid(public_key, signature, data),
        facts=manifest.get("facts", {}),
    )
    actual = file_digests(directory)
    verdict.altered = sorted(p for p in recorded if p in actual and actual[p] != recorded[p])
    verdict.removed = sorted(p for p in recorded if p not in actual)
    verdict.added = sorted(p for p in actual if p not in recorded)
    return verdict


def release_gate(bundle: Path, public_key: Ed25519PublicKey, digests: dict[str, str]) -> Verdict:
    """Refuse a release unless ``bundle`` is intact and signed, its acceptance run passed, and
    that run had these content digests running (the release promoted is the one tested)."""
    verdict = verify(bundle, public_key)
    if not verdict.intact:
        changed = verdict.altered + verdict.added + verdict.removed
        raise ConfigError(
            f"evidence {bundle} is not intact (signature "
            f"{'valid' if verdict.signature_valid else 'INVALID'}; changed: {changed or 'none'})"
        )
    status = verdict.facts.get("pytest_exit_status")
    if status != 0:
        raise ConfigError(f"the acceptance run sealed in {bundle} did not pass (exit {status})")
    tested = {
        digest
        for running in verdict.facts.get("engine_images_under_test", {}).values()
        if isinstance(running, dict)
        for digest in running.values()
    }
    untested = {ref: digest for ref, digest in digests.items() if digest not in tested}
    if untested:
        raise ConfigError(f"the acceptance run sealed in {bundle} did not run {untested}")
    return verdict
