"""Steps that look for the engine's secrets everywhere they must not be."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client
from pytest_bdd import then

from deployer.actions.engine import ensure_engine
from deployer.lower.waiting import wait_until
from deployer.settings import Paths
from steps.support import secret_scan
from steps.support.environments import Environment, Environments, serving_pods
from steps.support.kube import Kube
from steps.support.report import RecordFigure

SECRET = "engine-secrets"  # pragma: allowlist secret
SECRET_FILES = "/etc/engine/secrets"


def exposures(kube: Kube, namespace: str, values: dict[str, str]) -> dict[str, list[str]]:
    """Which secret values appear in the namespace's pod specs, ConfigMaps and container logs."""
    found: dict[str, list[str]] = {}
    serialize = kube.api.sanitize_for_serialization
    pods = kube.core.list_namespaced_pod(namespace).items
    workloads: list[Any] = [
        *pods,
        *kube.apps.list_namespaced_deployment(namespace).items,
        *kube.apps.list_namespaced_stateful_set(namespace).items,
        *kube.apps.list_namespaced_replica_set(namespace).items,
    ]
    specs = json.dumps([serialize(w) for w in workloads])
    found["pod specs"] = secret_scan.values_in_text(specs, values)
    maps = json.dumps([serialize(m) for m in kube.core.list_namespaced_config_map(namespace).items])
    found["configmaps"] = secret_scan.values_in_text(maps, values)
    logs = "\n".join(
        kube.logs(namespace, pod.metadata.name, container.name)
        for pod in pods
        for container in pod.spec.containers
    )
    found["container logs"] = secret_scan.values_in_text(logs, values)
    return {channel: names for channel, names in found.items() if names}


def plant(kube: Kube, namespace: str, image: str, value: str) -> None:
    """A decoy that leaks ``value`` in its spec, a ConfigMap and its log: the search's control."""
    kube.core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="leaky"), data={"v": value})
    )
    kube.create(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "leaky"},
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [
                    {
                        "name": "leaky",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", 'echo "$LEAK"; sleep 600'],
                        "env": [{"name": "LEAK", "value": value}],
                    }
                ],
            },
        },
    )
    kube.wait_pods_ready(namespace, ["leaky"], timeout=120)


@then("the environment's secret values are found in its Secret", target_fixture="secret_values")
def _(kube: Kube, environment: Environment) -> dict[str, str]:
    data = kube.core.read_namespaced_secret(SECRET, environment.namespace).data
    values = {name: base64.b64decode(encoded).decode() for name, encoded in data.items()}
    assert {"jwt-key", "postgres-password", "database-url", "data-key"} <= set(values), (
        values.keys()
    )
    assert all(len(value) >= 16 for value in values.values()), "a generated secret is too short"
    # Private keys of the environment's CA and certificates: searched by their first base64
    # line (PEM line breaks are escaped differently in JSON, logs and files).
    for name in ("engine-ca", "engine-tls"):
        stored = kube.core.read_namespaced_secret(name, environment.namespace).data
        for item, encoded in stored.items():
            if item.endswith(".key"):
                values[f"{name}/{item}"] = base64.b64decode(encoded).decode().splitlines()[1]
    return values


@then("they appear in no pod spec, ConfigMap, container log or engine image")
def _(
    kube: Kube,
    environment: Environment,
    secret_values: dict[str, str],
    namespace: str,
    toolbox_image: str,
    paths: Paths,
    record_figure: RecordFigure,
) -> None:
    # Control: a decoy leaking one value in each channel is found by the same search.
    plant(kube, namespace, toolbox_image, secret_values["jwt-key"])
    planted = exposures(kube, namespace, secret_values)
    assert planted == {
        channel: ["jwt-key"] for channel in ("pod specs", "configmaps", "container logs")
    }, planted
    leaks = exposures(kube, environment.namespace, secret_values)
    assert not leaks, f"secret values exposed in {environment.namespace}: {leaks}"
    docker = ensure_engine(paths)
    running = [
        pod
        for pod in kube.core.list_namespaced_pod(environment.namespace).items
        if pod.metadata.deletion_timestamp is None
    ]
    images = sorted({c.image for pod in running for c in pod.spec.containers})
    for image in images:
        found = secret_scan.values_in_chunks(docker.image_chunks(image), secret_values)
        assert not found, f"{image} contains the values of {found}"
    record_figure("secret_search_images", len(images))


@then("the engine reads them from files that only its own user can read")
def _(
    kube: Kube,
    environment: Environment,
    secret_values: dict[str, str],
    record_figure: RecordFigure,
) -> None:
    digests = {n: hashlib.sha256(v.encode()).hexdigest() for n, v in secret_values.items()}
    # The engine images have no shell; their own interpreter reports what the process sees.
    check = (
        "import os, json, stat\n"
        f"d = {SECRET_FILES!r}\n"
        "out = {}\n"
        "for n in sorted(os.listdir(d)):\n"
        "    if n.startswith('..'): continue\n"
        "    p = os.path.join(d, n); s = os.stat(p)\n"
        "    open(p).read()\n"
        "    out[n] = [oct(stat.S_IMODE(s.st_mode)), s.st_uid, s.st_gid]\n"
        "import hashlib\n"
        "digests = [hashlib.sha256(v.encode()).hexdigest() for v in os.environ.values()]\n"
        "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'files': out, "
        "'env_digests': digests}))\n"
    )
    files_of: dict[str, set[str]] = {}
    for app in ("engine-api", "engine-worker"):
        pod = serving_pods(kube, environment, app)[0]
        code, output = kube.exec(
            environment.namespace, pod.metadata.name, ["/usr/bin/python3.11", "-c", check]
        )
        assert code == 0, f"{app}: could not read its secret files: {output[-400:]}"
        seen = json.loads(output.strip().splitlines()[-1])
        record_figure(f"{app}_secret_files", json.dumps(seen["files"], sort_keys=True))
        assert seen["files"], f"{app} has no secret files under {SECRET_FILES}"
        files_of[app] = set(seen["files"])
        for name, (mode, _uid, gid) in seen["files"].items():
            assert mode == "0o440", f"{app}: {name} has mode {mode}, expected 0o440"
            assert gid == seen["gid"], f"{app}: {name} belongs to group {gid}, not the engine's"
        # The process environment, compared by digest so no value is ever printed.
        in_env = [n for n, d in digests.items() if d in set(seen["env_digests"])]
        assert not in_env, f"{app} has secret values in its environment: {in_env}"
    assert "jwt-key" in files_of["engine-api"], "engine-api has no JWT key file"
    assert "jwt-key" not in files_of["engine-worker"], (
        "engine-worker holds the JWT key it never uses"
    )


@then("a secret scanner finds nothing in the repository, but finds a planted key")
def _(paths: Paths, tmp_path: Path, record_figure: RecordFigure) -> None:
    files = secret_scan.repository_files(paths.repo)
    planted = tmp_path / "planted.env"
    fake_access_key = "AKIA" + "".join(secrets.choice(string.ascii_uppercase) for _ in range(16))
    planted.write_text(f"aws_access_key_id = {fake_access_key}\n")
    findings = secret_scan.scanner_findings([*files, planted])
    record_figure("secret_scan_files", len(files))
    assert str(planted) in findings, f"the scanner missed the planted key: {findings}"
    del findings[str(planted)]
    assert not findings, f"secrets in the repository: {findings}"


@then("no identity of the stack's namespaces can read a Secret, while a granted one can")
def _(
    kube: Kube,
    environment: Environment,
    environments: Environments,
    namespace: str,
    record_figure: RecordFigure,
) -> None:
    namespaces = sorted(
        {e.namespace for e in environments.deployed.values()}
        | {e.client_namespace for e in environments.deployed.values()}
    )
    allowed: list[str] = []
    checked = 0
    for source in namespaces:
        for account in kube.core.list_namespaced_service_account(source).items:
            user = f"system:serviceaccount:{source}:{account.metadata.name}"
            groups = [
                "system:serviceaccounts",
                f"system:serviceaccounts:{source}",
                "system:authenticated",
            ]
            for verb, where, name in (
                ("get", environment.namespace, SECRET),
                ("list", environment.namespace, ""),
                ("watch", environment.namespace, ""),
                ("list", "", ""),
            ):
                checked += 1
                if kube.can(user, groups, verb, where, name):
                    allowed.append(f"{user} may {verb} secrets in {where or 'all namespaces'}")
            # No workload identity is anything like cluster-admin.
            if kube.can(user, groups, "*", "", resource="*", group="*"):
                allowed.append(f"{user} may do anything anywhere (cluster-admin)")
    record_figure("rbac_secret_decisions_checked", checked)
    # Control: the authorizer does say yes to a real cluster-admin (kubeadm's admin group).
    admins = ["kubeadm:cluster-admins", "system:authenticated"]
    assert kube.can("ce-probe-admin", admins, "*", "", resource="*", group="*"), (
        "the authorizer denied a cluster-admin: the cluster-admin check proves nothing"
    )
    assert not allowed, "identities that can read Secrets: " + "; ".join(allowed)
    # Control: grant one identity exactly `get` on the Secret and see the authorizer say yes.
    probe = f"secret-reader-{uuid.uuid4().hex[:6]}"
    user = f"system:serviceaccount:{namespace}:{probe}"
    groups = ["system:serviceaccounts", "system:authenticated"]
    role = client.V1Role(
        metadata=client.V1ObjectMeta(name=probe),
        rules=[
            client.V1PolicyRule(
                api_groups=[""], resources=["secrets"], verbs=["get"], resource_names=[SECRET]
            )
        ],
    )
    binding = client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name=probe),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=probe),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=probe, namespace=namespace)],
    )
    kube.rbac.create_namespaced_role(environment.namespace, role)
    kube.rbac.create_namespaced_role_binding(environment.namespace, binding)

    def granted() -> bool:
        return kube.can(user, groups, "get", environment.namespace, SECRET)

    try:
        # RBAC decisions follow the API's objects through informers: allow a short lag.
        wait_until(granted, timeout=30, interval=0.5, describe=f"{user} granted get on {SECRET}")
    finally:
        kube.rbac.delete_namespaced_role_binding(probe, environment.namespace)
        kube.rbac.delete_namespaced_role(probe, environment.namespace)
    wait_until(lambda: not granted(), timeout=30, interval=0.5, describe="the grant to be revoked")
