"""Ed25519 keys for signing evidence: loaded from the environment or a file, made on first use.

The private key never goes in the checkout or in a bundle. Whoever verifies a
bundle needs the public key from a source they trust (the signer's ``.pub``
file, published beside releases); the key's fingerprint in the bundle only
says which key signed it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from deployer.errors import ConfigError

KEY_ENV = "CE_EVIDENCE_KEY"  # the PEM itself (a CI secret)
KEY_FILE_ENV = "CE_EVIDENCE_KEY_FILE"  # or a path to it


def default_key_file() -> Path:
    """Outside the checkout and outside caches that get pruned."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path.home() / ".config"
    return base / "consciousness-engine" / "evidence-signing-key.pem"


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    source: str  # where it came from, for messages
    created: bool = False  # made just now: its public part must be published

    @property
    def public_pem(self) -> bytes:
        return public_pem(self.private.public_key())

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.private.public_key())

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _private_from_pem(pem: bytes, source: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{source} is not an unencrypted PEM private key: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{source} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_or_create(key_file: Path | None = None) -> SigningKey:
    """$CE_EVIDENCE_KEY, else $CE_EVIDENCE_KEY_FILE, else ``key_file`` (default under
    ~/.config), created (mode 0600, with its public part beside it) when missing."""
    if pem := os.environ.get(KEY_ENV):
        return SigningKey(_private_from_pem(pem.encode(), f"${KEY_ENV}"), f"${KEY_ENV}")
    if path := os.environ.get(KEY_FILE_ENV):
        key_file = Path(path)
        if not key_file.is_file():
            raise ConfigError(f"${KEY_FILE_ENV} names {key_file}, which does not exist")
    key_file = key_file or default_key_file()
    if key_file.is_file():
        return SigningKey(_private_from_pem(key_file.read_bytes(), str(key_file)), str(key_file))
    private = Ed25519PrivateKey.generate()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(private_pem)
    public_file(key_file).write_bytes(public_pem(private.public_key()))
    return SigningKey(private, str(key_file), created=True)


def local_public_key() -> tuple[Ed25519PublicKey, str]:
    """The public part of this machine's signing key (whichever load_or_create would use),
    without making one; and where it came from."""
    if os.environ.get(KEY_ENV) or os.environ.get(KEY_FILE_ENV):
        key = load_or_create()
        return key.private.public_key(), key.source
    public = public_file(default_key_file())
    if not public.is_file():
        raise ConfigError(f"no signing key on this machine ({public}): pass --public-key")
    return load_public(public), str(public)


def public_file(key_file: Path) -> Path:
    return key_file.with_suffix(".pub")


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as error:
        raise ConfigError(f"cannot read the public key {path}: {error.strerror}") from None
    except ValueError as error:
        raise ConfigError(f"{path} is not a PEM public key: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def signature_valid(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
