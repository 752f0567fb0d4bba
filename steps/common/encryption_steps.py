"""Steps that read what is really stored: raw etcd values and raw database files on a node."""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass

from kubernetes import client
from pytest_bdd import then, when

from deployer.actions import cluster_security
from deployer.actions.cluster_security import Rotation
from deployer.lower import encryption_config, etcd
from deployer.settings import Paths
from steps.support.environments import Environment, api_call, session_titles
from steps.support.kube import Kube
from steps.support.provider import ETCD_ACCESS, NODE_SHELL, ClusterProvider
from steps.support.report import RecordFigure


@dataclass(frozen=True)
class Stored:
    """A Secret and a ConfigMap holding the same marker, in a namespace of the suite."""

    namespace: str
    name: str
    marker: str


def current_keys(provider: ClusterProvider, paths: Paths) -> list[str]:
    config = cluster_security.encryption_file(provider.cluster_dir(paths))
    return [key.name for key in encryption_config.read(config)]


def raw(provider: ClusterProvider, kube: Kube, key: str) -> bytes:
    __tracebackhide__ = True
    provider.require(ETCD_ACCESS, "reading raw etcd values")
    value = etcd.raw_value(kube.api, key)
    assert value is not None, f"etcd holds no value under {key}"
    return value


@when("a Secret and a ConfigMap holding the same marker are created", target_fixture="stored")
def _(kube: Kube, namespace: str) -> Stored:
    marker = f"ce-plaintext-marker-{uuid.uuid4().hex}"
    name = "at-rest-probe"
    metadata = client.V1ObjectMeta(name=name)
    kube.core.create_namespaced_secret(
        namespace, client.V1Secret(metadata=metadata, string_data={"value": marker})
    )
    kube.core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=metadata, data={"value": marker})
    )
    return Stored(namespace, name, marker)


@then("the ConfigMap's raw etcd value shows the marker")
def _(cluster_provider: ClusterProvider, kube: Kube, stored: Stored) -> None:
    # Control: the raw read really returns stored bytes, so "no marker" below means encryption.
    value = raw(cluster_provider, kube, etcd.configmap_key(stored.namespace, stored.name))
    assert stored.marker.encode() in value, "the raw read of a ConfigMap did not show its data"


@then("the Secret's raw etcd value is ciphertext under the cluster's current key")
def _(
    cluster_provider: ClusterProvider,
    kube: Kube,
    paths: Paths,
    stored: Stored,
    record_figure: RecordFigure,
) -> None:
    value = raw(cluster_provider, kube, etcd.secret_key(stored.namespace, stored.name))
    record_figure("etcd_secret_prefix", value[:40].decode(errors="replace"))
    assert stored.marker.encode() not in value, "the Secret's value is in etcd in plaintext"
    prefix = encryption_config.storage_prefix(current_keys(cluster_provider, paths)[0])
    assert value.startswith(prefix), f"expected prefix {prefix!r}, etcd holds {value[:40]!r}"


@then("the environment's own Secret is ciphertext in etcd")
def _(cluster_provider: ClusterProvider, kube: Kube, environment: Environment) -> None:
    secret = kube.core.read_namespaced_secret("engine-secrets", environment.namespace)
    value = raw(cluster_provider, kube, etcd.secret_key(environment.namespace, "engine-secrets"))
    assert value.startswith(b"k8s:enc:secretbox:v1:"), f"not encrypted: {value[:30]!r}"
    for name, encoded in secret.data.items():
        assert base64.b64decode(encoded) not in value, f"{name} is in etcd in plaintext"


@when("the Secret encryption key is rotated", target_fixture="rotation")
def _(
    cluster_provider: ClusterProvider, kube: Kube, paths: Paths, record_figure: RecordFigure
) -> Rotation:
    rotation = cluster_security.rotate(kube.api, cluster_provider.cluster_dir(paths))
    record_figure("key_rotation_seconds_to_new_key", round(rotation.seconds_to_new_key, 1))
    record_figure("key_rotation_seconds_to_drop_old", round(rotation.seconds_to_drop_old, 1))
    record_figure("key_rotation_secrets_rewritten", rotation.secrets_rewritten)
    return rotation


@then("every Secret's raw etcd value is under the new key")
def _(cluster_provider: ClusterProvider, kube: Kube, stored: Stored, rotation: Rotation) -> None:
    cluster_provider.require(ETCD_ACCESS, "reading raw etcd values")
    values = etcd.raw_values(kube.api, "/registry/secrets/")
    prefix = encryption_config.storage_prefix(rotation.new_key)
    stale = sorted(key for key, value in values.items() if not value.startswith(prefix))
    assert values and not stale, f"Secrets not re-encrypted with {rotation.new_key}: {stale}"
    probe = values[etcd.secret_key(stored.namespace, stored.name)]
    assert stored.marker.encode() not in probe


@then("the engine API restarted after the rotation still accepts its environment's tokens")
def _(kube: Kube, environment: Environment, record_figure: RecordFigure) -> None:
    seconds = kube.restart_deployment(environment.namespace, "engine-api", timeout=240)
    record_figure("engine_api_restart_after_rotation_s", round(seconds, 1))
    answer = api_call(
        kube,
        environment,
        "GET",
        "/info",
        environment.token("reader"),
    )
    assert answer.status == 200, f"engine-api after the rotation answered {answer}"


@dataclass(frozen=True)
class MarkedWrite:
    title: str
    writer: str
    started: float


@when(
    "a session whose title holds a marker is written by a writer with a marked name",
    target_fixture="marked_write",
)
def _(kube: Kube, environment: Environment) -> MarkedWrite:
    marker = uuid.uuid4().hex
    write = MarkedWrite(f"title-marker-{marker}", f"writer-marker-{marker}", time.time())
    created = api_call(
        kube,
        environment,
        "POST",
        "/v1/sessions",
        environment.token("writer", subject=write.writer),
        {"title": write.title},
    )
    assert created.status == 201, f"the marked write was refused: {created}"
    return write


@then("the API reads the title back in clear")
def _(kube: Kube, environment: Environment, marked_write: MarkedWrite) -> None:
    assert marked_write.title in session_titles(kube, environment)


@then("the database files on the node hold the writer's name but not the title")
def _(
    cluster_provider: ClusterProvider,
    kube: Kube,
    environment: Environment,
    marked_write: MarkedWrite,
    record_figure: RecordFigure,
) -> None:
    cluster_provider.require(NODE_SHELL, "reading the database's files on its node")
    claim = kube.core.read_namespaced_persistent_volume_claim(
        "data-engine-postgres-0", environment.namespace
    )
    volume = kube.core.read_persistent_volume(claim.spec.volume_name)
    path = (volume.spec.host_path or volume.spec.local).path
    pod = kube.core.read_namespaced_pod("engine-postgres-0", environment.namespace)
    node = pod.spec.node_name

    def files_holding(text: str) -> list[str]:
        code, output = cluster_provider.node_exec(node, ["grep", "-rlaF", text, path])
        assert code in (0, 1), f"grep on {node}:{path} failed ({code}): {output[-300:]!r}"
        return output.decode().split()

    # Control: the writer's name is stored in plaintext, so grep does see committed rows (WAL).
    with_writer = files_holding(marked_write.writer)
    assert with_writer, f"the writer's name is not in {node}:{path}; the raw read sees nothing"
    with_title = files_holding(marked_write.title)
    record_figure("database_files_with_plaintext_writer", len(with_writer))
    record_figure("database_files_with_plaintext_title", len(with_title))
    assert not with_title, f"the title is stored in plaintext in {with_title}"
