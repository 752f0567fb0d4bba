"""The API server's EncryptionConfiguration for Secrets: secretbox keys, newest first.

The first provider encrypts new writes; the others only decrypt. ``identity``
is never listed, so a Secret stored before encryption was on could not be read
and would show up at once (our clusters encrypt from their first write).
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from deployer.errors import ConfigError

PROVIDER = "secretbox"


@dataclass(frozen=True)
class EncryptionKey:
    name: str
    secret: str  # base64 of 32 random bytes

    @classmethod
    def generate(cls) -> EncryptionKey:
        name = f"key-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.urandom(2).hex()}"
        return cls(name, base64.b64encode(os.urandom(32)).decode())


def storage_prefix(key_name: str) -> bytes:
    """What a value encrypted with ``key_name`` starts with in etcd."""
    return f"k8s:enc:{PROVIDER}:v1:{key_name}:".encode()


def render(keys: list[EncryptionKey]) -> str:
    if not keys:
        raise ConfigError("an encryption configuration needs at least one key")
    config = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [
            {
                "resources": ["secrets"],
                "providers": [
                    {PROVIDER: {"keys": [{"name": k.name, "secret": k.secret} for k in keys]}}
                ],
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def parse(text: str) -> list[EncryptionKey]:
    try:
        config = yaml.safe_load(text)
        providers = config["resources"][0]["providers"]
        keys = next(p[PROVIDER]["keys"] for p in providers if PROVIDER in p)
        return [EncryptionKey(str(k["name"]), str(k["secret"])) for k in keys]
    except (yaml.YAMLError, KeyError, IndexError, TypeError, StopIteration) as error:
        raise ConfigError(f"unreadable encryption configuration: {error}") from None


def read(path: Path) -> list[EncryptionKey]:
    if not path.exists():
        raise ConfigError(f"no encryption configuration at {path}")
    return parse(path.read_text())


def write(path: Path, keys: list[EncryptionKey]) -> None:
    """Replace the file atomically (the API server polls it), readable by root only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_suffix(".partial")
    partial.write_text(render(keys))
    partial.chmod(0o600)
    partial.replace(path)
