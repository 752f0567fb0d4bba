"""Releases: the pipeline's build, deploy and validate stages, and promotion to production.

A release is the engine's three images for one commit. Staging validation
records, in the cluster (namespace ce-delivery), exactly what it validated: the
image IDs the build produced and the content digests the nodes ran. ``promote``
deploys only such a release, checks that production then runs those same
digests, and records who promoted what and when.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import secrets
import shutil
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from deployer.actions import deploy, evidence, pipeline
from deployer.actions.engine import ensure_engine
from deployer.actions.engine_images import EngineImages, build_engine_images, image_refs, revision
from deployer.errors import ConfigError, DeployerError
from deployer.lower.docker_client import DockerClient
from deployer.lower.kube import api_client
from deployer.lower.waiting import WaitTimeout, wait_until
from deployer.settings import Paths

log = logging.getLogger(__name__)

DELIVERY_NAMESPACE = "ce-delivery"
VALIDATED_LABEL = "ce.io/validated-in"
PROMOTED_LABEL = "ce.io/promoted-to"
TOOLBOX_IMAGE = "ce.local/toolbox:bookworm"
SMOKE_TIMEOUT_S = 120

# Run in a pod of a namespace the environment's NetworkPolicies admit: what a client sees.
SMOKE_SCRIPT = """
import json, os, ssl, time, urllib.request
ctx = ssl.create_default_context(cafile="/etc/engine-ca/ca.crt")
base, token = os.environ["URL"], os.environ["TOKEN"]
def call(method, path, body=None, auth=True):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    if auth:
        request.add_header("Authorization", "Bearer " + token)
    if data:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, context=ctx, timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")
# A new pod's address reaches the network policy engine of each node a few seconds after
# it starts, not of every node at once: one replica may answer while another still
# refuses. A refused connection never reached a server, so it is tried again (writes too).
started = time.monotonic()
def settled(method, path, body=None, auth=True):
    while True:
        try:
            return call(method, path, body, auth)
        except OSError as error:
            refused = isinstance(getattr(error, "reason", error), ConnectionRefusedError)
            if not refused or time.monotonic() - started > 60:
                raise
            time.sleep(1)
while True:
    try:
        checks = {"healthz": call("GET", "/healthz", auth=False)[0]}
        break
    except OSError:
        if time.monotonic() - started > 60:
            raise
        time.sleep(1)
checks["seconds_until_reachable"] = round(time.monotonic() - started, 1)
checks["revision"] = settled("GET", "/info")[1]["config"]["revision"]
title = "staging validation " + os.environ["NONCE"]
created = settled("POST", "/v1/sessions", {"title": title})[1]
checks["read_back"] = settled("GET", f"/v1/sessions/{created['id']}")[1]["title"] == title
print(json.dumps(checks))
"""


@dataclass
class Validation:
    """What staging validation saw, stored as ce-delivery/validated-<env>-<revision>."""

    environment: str
    revision: str
    images: dict[str, str]  # component -> image ref
    image_ids: dict[str, str]  # image ref -> image ID (sha256 of its config)
    digests: dict[str, str]  # image ref -> content digest the nodes ran
    checks: dict[str, Any]
    commit: str
    validated_at: float


@dataclass
class Promotion:
    revision: str
    source: str
    target: str
    who: str
    promoted_at: float
    seconds: float
    digests: dict[str, str]


def release_images(images: EngineImages) -> dict[str, str]:
    return {"api": images.api, "worker": images.worker, "postgres": images.postgres}


def images_of(refs: dict[str, str], rev: str) -> EngineImages:
    """The release named by ``release_images``' mapping (a build or validation record)."""
    return EngineImages(
        api=refs["api"], worker=refs["worker"], postgres=refs["postgres"], revision=rev
    )


def stage_build(paths: Paths) -> EngineImages:
    """Build this commit's images, tagged with its revision, and record their IDs and SBOM."""
    with pipeline.stage("build") as record:
        rev = revision(paths)
        if rev == "unknown" or "-dirty-" in rev:
            raise ConfigError(f"the pipeline builds committed code only (revision {rev})")
        docker = ensure_engine(paths)
        # An explicit revision: older tags stay (they may be what production runs).
        run = os.environ.get("GITHUB_SHA", rev)
        images = build_engine_images(paths, docker, rev=rev, release=run)
        refs = release_images(images)
        record.details.update(
            revision=images.revision,
            images=refs,
            image_ids={ref: docker.image_id(ref) for ref in refs.values()},
            image_bytes=images.image_bytes,
            rebuilt=images.rebuilt,
        )
        folder = pipeline.stage_dir()
        if images.sbom is not None and folder is not None:
            shutil.copy(images.sbom, folder / "sbom-engine.cdx.json")
            record.details["sbom"] = str(folder / "sbom-engine.cdx.json")
        return images


def commit_images(paths: Paths, docker: DockerClient) -> EngineImages:
    """This commit's images as the build stage tagged them; an error if it did not."""
    images = image_refs(paths)
    missing = [ref for ref in release_images(images).values() if docker.image_id(ref) is None]
    if missing:
        raise ConfigError(
            f"no image {', '.join(missing)}: the build stage has not run for this commit"
        )
    return images


def stage_deploy(paths: Paths, environment: str, target: deploy.Target) -> None:
    cluster = target.kind_cluster or "cluster"
    with (
        pipeline.stage("deploy") as record,
        pipeline.environment_lock(paths, cluster, environment) as waited,
    ):
        images = commit_images(paths, ensure_engine(paths))
        started = time.time()
        deploy.deploy(paths, environment, target, images=images)
        record.details.update(
            environment=environment,
            images=release_images(images),
            waited_for_environment_s=waited,
            seconds=round(time.time() - started, 1),
        )


def stage_validate(paths: Paths, environment: str, target: deploy.Target) -> Validation:
    cluster = target.kind_cluster or "cluster"
    with (
        pipeline.stage("validate") as record,
        pipeline.environment_lock(paths, cluster, environment) as waited,
    ):
        docker = ensure_engine(paths)
        validation = validate(docker, environment, target, commit_images(paths, docker))
        record.details.update(asdict(validation))
        record.details["waited_for_environment_s"] = waited
        return validation


def validate(
    docker: DockerClient, environment: str, target: deploy.Target, images: EngineImages
) -> Validation:
    """The environment runs exactly ``images`` and answers as that release; record it."""
    api = api_client(target.kubeconfig)
    namespace = deploy.namespace_for(environment)
    refs = release_images(images)
    digests = running_digests(api, namespace)
    if set(digests) != set(refs.values()):
        raise DeployerError(f"{environment} runs {sorted(digests)}, not the release {refs}")
    checks = smoke(api, environment)
    if checks.get("healthz") != 200 or checks.get("revision") != images.revision:
        raise DeployerError(f"{environment} does not answer as {images.revision}: {checks}")
    if checks.get("read_back") is not True:
        raise DeployerError(f"{environment} did not read back a write: {checks}")
    validation = Validation(
        environment=environment,
        revision=images.revision,
        images=refs,
        image_ids={ref: docker.image_id(ref) or "" for ref in refs.values()},
        digests=digests,
        checks=checks,
        commit=os.environ.get("GITHUB_SHA", images.revision),
        validated_at=time.time(),
    )
    _store(
        api,
        f"validated-{environment}-{images.revision}",
        {VALIDATED_LABEL: environment},
        validation,
    )
    log.info("%s validated %s: %s", environment, images.revision, checks)
    return validation


def running_digests(api: client.ApiClient, namespace: str) -> dict[str, str]:
    """Image ref -> content digest, over the engine's live pods; one digest per ref or an error."""
    found: dict[str, set[str]] = {}
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=deploy.PART_OF)
    for pod in pods.items:
        if pod.metadata.deletion_timestamp is not None:
            continue
        for status in pod.status.container_statuses or []:
            if status.image_id:
                found.setdefault(status.image, set()).add(status.image_id.rsplit("@", 1)[-1])
    mixed = {ref: sorted(d) for ref, d in found.items() if len(d) > 1}
    if mixed:
        raise DeployerError(f"{namespace} runs one tag with different contents: {mixed}")
    return {ref: next(iter(d)) for ref, d in found.items()}


def smoke(api: client.ApiClient, environment: str) -> dict[str, Any]:
    """Health, version and a write read back, from a pod the environment's policies admit."""
    core = client.CoreV1Api(api)
    namespace = f"ce-validate-{environment}"
    _ensure_namespace(core, namespace, {"ce.io/access": environment})
    ca = deploy.read_ca_pem(api, environment)
    _apply_configmap(core, namespace, "engine-ca", {"ca.crt": ca})
    key = deploy.jwt_key(api, environment)
    now = int(time.time())
    token = jwt.encode(
        {
            "sub": "pipeline-validation",
            "role": "writer",
            "iss": f"consciousness-engine/{environment}",
            "aud": "engine-api",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        },
        key,
        algorithm="HS256",
    )
    name = f"smoke-{secrets.token_hex(3)}"
    url = f"https://engine-api.{deploy.namespace_for(environment)}.svc.cluster.local:8080"
    env = {"URL": url, "TOKEN": token, "NONCE": name}
    core.create_namespaced_pod(namespace, _smoke_pod(name, env))
    try:
        phase, _ = wait_until(
            lambda: _finished(core, namespace, name),
            timeout=SMOKE_TIMEOUT_S,
            describe=f"smoke test {namespace}/{name} to finish",
        )
        # Raw bytes: the client would otherwise parse JSON output into a Python repr.
        output = core.read_namespaced_pod_log(name, namespace, _preload_content=False).data.decode()
    except WaitTimeout as late:
        raise DeployerError(str(late)) from None
    finally:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    if phase != "Succeeded":
        raise DeployerError(f"smoke test in {environment} failed: {output.strip()[-1500:]}")
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def _finished(core: client.CoreV1Api, namespace: str, name: str) -> str | None:
    phase: str = core.read_namespaced_pod(name, namespace).status.phase
    return phase if phase in ("Succeeded", "Failed") else None


def _smoke_pod(name: str, env: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "staging-smoke"}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "smoke",
                    "image": TOOLBOX_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python3", "-c", SMOKE_SCRIPT],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    "volumeMounts": [{"name": "ca", "mountPath": "/etc/engine-ca"}],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65534,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                }
            ],
            "volumes": [{"name": "ca", "configMap": {"name": "engine-ca"}}],
        },
    }


def promote(
    paths: Paths,
    target: deploy.Target,
    to: str,
    source: str = "staging",
    rev: str | None = None,
    who: str | None = None,
    evidence_gate: tuple[Path, Ed25519PublicKey] | None = None,
) -> Promotion:
    """Deploy to ``to`` the release ``source`` validated (what it runs now, or ``rev``); with
    ``evidence_gate`` (bundle, trusted key), only if that passing, signed run tested it."""
    deploy.check_environment(to)
    deploy.check_environment(source)
    if to == source:
        raise ConfigError(f"cannot promote {source} to itself")
    api = api_client(target.kubeconfig)
    validation = validated_release(api, source, rev)
    if evidence_gate is not None:
        bundle, public_key = evidence_gate
        evidence.release_gate(bundle, public_key, validation.digests)
        log.info("evidence %s: signed, passing, and it tested this release", bundle)
    docker = ensure_engine(paths)
    changed = {
        ref: image_id
        for ref, image_id in validation.image_ids.items()
        if docker.image_id(ref) != image_id
    }
    if changed:
        raise ConfigError(
            f"refusing to promote {validation.revision}: {', '.join(changed)} no longer "
            f"is the image {source} validated (rebuilt or re-tagged since)"
        )
    images = images_of(validation.images, validation.revision)
    started = time.time()
    log.info("==> Promoting %s from %s to %s", validation.revision, source, to)
    deploy.deploy(paths, to, target, images=images)
    digests = running_digests(api, deploy.namespace_for(to))
    if digests != validation.digests:
        raise DeployerError(
            f"{to} runs {digests}, not the digests {source} validated {validation.digests}"
        )
    promotion = Promotion(
        revision=validation.revision,
        source=source,
        target=to,
        who=who or os.environ.get("GITHUB_ACTOR") or f"{getpass.getuser()}@{socket.gethostname()}",
        promoted_at=time.time(),
        seconds=round(time.time() - started, 1),
        digests=digests,
    )
    name = f"promoted-{to}-{time.strftime('%Y%m%dt%H%M%S')}-{secrets.token_hex(2)}"
    _store(api, name, {PROMOTED_LABEL: to}, promotion)
    log.info("==> %s now runs %s (promoted by %s)", to, validation.revision, promotion.who)
    return promotion


def validated_release(api: client.ApiClient, source: str, rev: str | None) -> Validation:
    """The validation record of ``rev``, or of what ``source`` runs now; refuse without one."""
    core = client.CoreV1Api(api)
    if rev is None:
        running = running_digests(api, deploy.namespace_for(source))
        wanted = f"the release {source} runs now ({', '.join(sorted(running))})"
    else:
        running, wanted = {}, f"revision {rev}"
    try:
        stored = core.list_namespaced_config_map(
            DELIVERY_NAMESPACE, label_selector=f"{VALIDATED_LABEL}={source}"
        ).items
    except ApiException as error:
        if error.status != 404:
            raise
        stored = []
    for item in stored:
        validation = Validation(**json.loads(item.data["record"]))
        if rev is not None and validation.revision == rev:
            return validation
        if rev is None and running and validation.digests == running:
            return validation
    raise ConfigError(
        f"refusing to promote {wanted}: it has not passed validation in {source} "
        "(no record in namespace ce-delivery); push it through the pipeline first"
    )


def promotions(api: client.ApiClient) -> list[Promotion]:
    core = client.CoreV1Api(api)
    try:
        items = core.list_namespaced_config_map(
            DELIVERY_NAMESPACE, label_selector=PROMOTED_LABEL
        ).items
    except ApiException as error:
        if error.status == 404:
            return []
        raise
    found = [Promotion(**json.loads(item.data["record"])) for item in items]
    return sorted(found, key=lambda promotion: promotion.promoted_at)


def _store(api: client.ApiClient, name: str, labels: dict[str, str], record: Any) -> None:
    core = client.CoreV1Api(api)
    _ensure_namespace(core, DELIVERY_NAMESPACE, {})
    _apply_configmap(core, DELIVERY_NAMESPACE, name, {"record": json.dumps(asdict(record))}, labels)


def _ensure_namespace(core: client.CoreV1Api, name: str, labels: dict[str, str]) -> None:
    body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
    try:
        core.create_namespace(body)
    except ApiException as error:
        if error.status != 409:
            raise


def _apply_configmap(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    data: dict[str, str],
    labels: dict[str, str] | None = None,
) -> None:
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels or {}), data=data
    )
    try:
        core.create_namespaced_config_map(namespace, body)
    except ApiException as error:
        if error.status != 409:
            raise
        core.replace_namespaced_config_map(name, namespace, body)
