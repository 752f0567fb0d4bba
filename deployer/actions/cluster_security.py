"""Cluster-level security the kind config points at: Secret encryption keys and the audit policy.

The files live in the cluster's own folder (outside git), mounted read-only
into the control-plane node at /etc/kubernetes/ce-security; deleting the
cluster deletes its keys.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.rest import ApiException

from deployer.errors import ClusterError
from deployer.lower import encryption_config, etcd
from deployer.lower.encryption_config import EncryptionKey
from deployer.lower.waiting import WaitTimeout, wait_until
from deployer.settings import Paths

log = logging.getLogger(__name__)

NODE_PATH = "/etc/kubernetes/ce-security"
RELOADS = re.compile(
    r'^apiserver_encryption_config_controller_automatic_reloads_total\{[^}]*status="success"[^}]*\}'
    r"\s+(\S+)$",
    re.MULTILINE,
)
# The API server polls its encryption configuration once a minute.
RELOAD_TIMEOUT = 150.0


def security_dir(cluster_dir: Path) -> Path:
    return cluster_dir / "security"


def encryption_file(cluster_dir: Path) -> Path:
    return security_dir(cluster_dir) / "encryption" / "config.yaml"


def prepare(paths: Paths, cluster_dir: Path) -> Path:
    """Write the audit policy and a first encryption key (kept if the folder exists)."""
    folder = security_dir(cluster_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copyfile(
        paths.repo / "infra" / "kind" / "security" / "audit-policy.yaml",
        folder / "audit-policy.yaml",
    )
    config = encryption_file(cluster_dir)
    if not config.exists():
        encryption_config.write(config, [EncryptionKey.generate()])
        log.info("   generated a Secret encryption key for the cluster (%s)", config)
    return folder


@dataclass(frozen=True)
class Rotation:
    """What a key rotation did, with the seconds each phase took."""

    old_keys: tuple[str, ...]
    new_key: str
    secrets_rewritten: int
    seconds_to_new_key: float
    seconds_to_drop_old: float


def successful_reloads(api: ApiClient) -> float:
    """The API server's count of successful encryption-config reloads (0 before the first)."""
    response = api.call_api(
        "/metrics", "GET", auth_settings=["BearerToken"], _preload_content=False
    )[0]
    found = RELOADS.search(response.data.decode())
    return float(found.group(1)) if found else 0.0


def _wait_for_reload(api: ApiClient, before: float, describe: str) -> float:
    _, seconds = wait_until(
        lambda: successful_reloads(api) > before,
        timeout=RELOAD_TIMEOUT,
        interval=2,
        describe=describe,
    )
    return seconds


def newest_key_in_use(api: ApiClient, key: EncryptionKey) -> bool:
    """Write a canary Secret and check its raw etcd value carries ``key``'s prefix."""
    core = client.CoreV1Api(api)
    name = f"ce-encryption-canary-{uuid.uuid4().hex[:8]}"
    core.create_namespaced_secret(
        "kube-system",
        client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data={"canary": name}),
    )
    try:
        raw = etcd.raw_value(api, etcd.secret_key("kube-system", name)) or b""
    finally:
        core.delete_namespaced_secret(name, "kube-system")
    return raw.startswith(encryption_config.storage_prefix(key.name))


def reencrypt_all_secrets(api: ApiClient) -> int:
    """Rewrite every Secret unchanged: the API server stores it again with the newest key."""
    core = client.CoreV1Api(api)
    count = 0
    for secret in core.list_secret_for_all_namespaces().items:
        try:
            core.replace_namespaced_secret(secret.metadata.name, secret.metadata.namespace, secret)
        except ApiException as error:
            if error.status not in (404, 409):  # deleted or changed meanwhile: already rewritten
                raise ClusterError(
                    f"could not re-encrypt {secret.metadata.namespace}/{secret.metadata.name}: "
                    f"{error.status} {error.reason}"
                ) from None
        count += 1
    return count


def rotate(api: ApiClient, cluster_dir: Path) -> Rotation:
    """Add a new key in front, wait until it encrypts, rewrite every Secret, drop old keys.

    The API server reloads the file by itself (no restart); every phase waits
    on what the server reports, and the rotation ends by reading every Secret
    back with only the new key configured.
    """
    path = encryption_file(cluster_dir)
    old = encryption_config.read(path)
    new = EncryptionKey.generate()
    try:
        before = successful_reloads(api)
        encryption_config.write(path, [new, *old])
        log.info("   new key %s written; waiting for the API server to load it", new.name)
        started = time.monotonic()
        _wait_for_reload(api, before, "the API server to load the new encryption key")
        wait_until(
            lambda: newest_key_in_use(api, new),
            timeout=RELOAD_TIMEOUT,
            interval=2,
            describe=f"new Secrets to be encrypted with {new.name}",
        )
        to_new = time.monotonic() - started
        rewritten = reencrypt_all_secrets(api)
        log.info("   %d Secrets re-encrypted with %s", rewritten, new.name)
        before = successful_reloads(api)
        encryption_config.write(path, [new])
        to_drop = _wait_for_reload(api, before, "the API server to drop the old keys")
        client.CoreV1Api(api).list_secret_for_all_namespaces()  # fails if any is unreadable
    except WaitTimeout as error:
        raise ClusterError(f"key rotation did not complete: {error}") from None
    except ApiException as error:
        raise ClusterError(f"key rotation failed: {error.status} {error.reason}") from None
    return Rotation(tuple(k.name for k in old), new.name, rewritten, to_new, to_drop)
