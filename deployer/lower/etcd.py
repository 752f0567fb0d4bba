"""Raw reads from etcd through the etcd static pod's own etcdctl (kubeadm clusters).

This is what an attacker with a copy of etcd (or of its backups) would see:
the bytes under /registry/..., before the API server decrypts anything.
"""

from __future__ import annotations

import base64
import json

from kubernetes import client
from kubernetes.client import ApiClient

from deployer.errors import ClusterError
from deployer.lower.kube import pod_exec

CERTS = "/etc/kubernetes/pki/etcd"
ETCDCTL = [
    "etcdctl",
    "--endpoints=https://127.0.0.1:2379",
    f"--cacert={CERTS}/ca.crt",
    f"--cert={CERTS}/server.crt",
    f"--key={CERTS}/server.key",
]


def etcd_pod(api: ApiClient) -> str:
    pods = client.CoreV1Api(api).list_namespaced_pod("kube-system", label_selector="component=etcd")
    if not pods.items:
        raise ClusterError("no etcd pod in kube-system: etcd is not reachable on this cluster")
    name: str = pods.items[0].metadata.name
    return name


def _etcdctl(api: ApiClient, arguments: list[str], timeout: float = 30) -> str:
    code, out, err = pod_exec(
        api, "kube-system", etcd_pod(api), ETCDCTL + arguments, timeout=timeout
    )
    if code != 0:
        raise ClusterError(f"etcdctl {' '.join(arguments[:2])} failed ({code}): {err[-300:]}")
    return out


def raw_value(api: ApiClient, key: str) -> bytes | None:
    """The stored bytes under ``key`` (None if absent)."""
    document = json.loads(_etcdctl(api, ["get", key, "-w", "json"]))
    kvs = document.get("kvs") or []
    return base64.b64decode(kvs[0]["value"]) if kvs else None


def secret_key(namespace: str, name: str) -> str:
    return f"/registry/secrets/{namespace}/{name}"


def configmap_key(namespace: str, name: str) -> str:
    return f"/registry/configmaps/{namespace}/{name}"


def raw_values(api: ApiClient, prefix: str) -> dict[str, bytes]:
    """Every stored value under ``prefix``, by key."""
    document = json.loads(_etcdctl(api, ["get", prefix, "--prefix", "-w", "json"], timeout=60))
    return {
        base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"])
        for kv in document.get("kvs") or []
    }
