"""Deploy the engine to one environment: build its images, render its overlay, apply, wait.

The environment name picks everything: namespace, replicas, resources,
configuration, database and keys. Keys and passwords are generated once per
environment into the Secret `engine-secrets` and never leave the cluster.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from deployer.actions import delivery, monitoring, registry
from deployer.actions.engine import ensure_engine
from deployer.actions.engine_images import EngineImages, build_engine_images
from deployer.errors import ClusterError, CommandError, ConfigError, ReleaseRolledBack
from deployer.lower import certificates, proc, rollouts
from deployer.lower.docker_client import DockerClient
from deployer.lower.kind import Kind
from deployer.lower.kube import api_client, pod_exec
from deployer.lower.prune import prune, refs
from deployer.lower.waiting import WaitTimeout, wait_until
from deployer.settings import Paths

log = logging.getLogger(__name__)

ENVIRONMENTS = ("dev", "staging", "production")
ROLLOUT_TIMEOUT = 300
SECRET_NAME = "engine-secrets"  # pragma: allowlist secret
CA_SECRET = "engine-ca"  # pragma: allowlist secret
TLS_SECRET = "engine-tls"  # pragma: allowlist secret
POSTGRES_USER = "engine"
REISSUE_BEFORE_S = certificates.LEAF_DAYS * 86400 / 3
POSTGRES_POD = "engine-postgres-0"
POSTGRES_CONTAINER = "postgres"  # beside it in the pod: postgres-exporter
POSTGRES_CERT = "/etc/engine/tls/postgres.crt"
PSQL = ("/usr/lib/postgresql/15/bin/psql", "-h", "/tmp", "-U", POSTGRES_USER, "-d", "postgres")
FIELD_MANAGER = "ce-deployer"
PART_OF = "app.kubernetes.io/part-of=consciousness-engine"
IMMUTABLE_STATEFULSET = "updates to statefulset spec for fields other than"


@dataclass(frozen=True)
class Target:
    """Where to deploy: a kubeconfig, and how images reach its nodes: loaded into the
    kind cluster built here, or pushed to ``registry`` for a cluster that pulls."""

    kubeconfig: Path
    kubectl: Path
    kind: Kind | None = None
    kind_cluster: str | None = None
    registry: str | None = None


def namespace_for(environment: str) -> str:
    return f"ce-{environment}"


def check_environment(environment: str) -> None:
    if environment not in ENVIRONMENTS:
        raise ConfigError(
            f"unknown environment {environment!r}; choose one of {', '.join(ENVIRONMENTS)}"
        )


def render(
    paths: Paths, kubectl: Path, environment: str, images: EngineImages
) -> list[dict[str, Any]]:
    """The environment's objects, from its kustomize overlay, with our image tags."""
    check_environment(environment)
    overlay = paths.repo / "infra" / "environments" / "overlays" / environment
    output = proc.run([kubectl, "kustomize", overlay], timeout=60, describe="kubectl kustomize")
    documents = [doc for doc in yaml.safe_load_all(output) if doc]
    by_name = {
        "ce.local/engine-api": images.api,
        "ce.local/engine-worker": images.worker,
        "ce.local/engine-postgres": images.postgres,
    }
    for document in documents:
        pod = document.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            if container["image"] in by_name:
                container["image"] = by_name[container["image"]]
    return documents


def generated_secrets(environment: str) -> dict[str, str]:
    """Fresh keys and passwords for one environment (never written anywhere but the cluster)."""
    password = secrets.token_urlsafe(24)
    return {
        "jwt-key": secrets.token_urlsafe(48),
        "postgres-password": password,
        "database-url": f"postgresql://engine:{password}@engine-postgres:5432/engine_{environment}",
        # AES-256 key for the engine's field-level encryption of user content at rest.
        "data-key": base64.b64encode(secrets.token_bytes(32)).decode(),
    }


def ensure_secret(api: client.ApiClient, environment: str) -> None:
    """Create the environment's keys and passwords once; later deploys keep them.

    A key a newer release needs and an older Secret lacks is added; existing
    values are never replaced (that would lock the database or void tokens).
    """
    core = client.CoreV1Api(api)
    namespace = namespace_for(environment)
    data = generated_secrets(environment)
    try:
        existing = core.read_namespaced_secret(SECRET_NAME, namespace)
    except ApiException as error:
        if error.status != 404:
            raise
    else:
        missing = {k: v for k, v in data.items() if k not in (existing.data or {})}
        if missing:
            core.patch_namespaced_secret(SECRET_NAME, namespace, {"stringData": missing})
            log.info("   added %s to %s/%s", ", ".join(sorted(missing)), namespace, SECRET_NAME)
        return
    core.create_namespaced_secret(namespace, _secret(SECRET_NAME, data))
    log.info("   created %s/%s (generated keys)", namespace, SECRET_NAME)


def ensure_tls(api: client.ApiClient, environment: str, force: bool = False) -> bool:
    """The environment's CA (kept) and its certificates (issued again when missing or near
    expiry): Postgres' server certificate, the engine's client certificate, engine-api's.

    Returns whether certificates were (re-)issued.
    """
    core = client.CoreV1Api(api)
    namespace = namespace_for(environment)
    try:
        stored = core.read_namespaced_secret(CA_SECRET, namespace).data
        ca = certificates.Issued(
            base64.b64decode(stored["ca.crt"]).decode(), base64.b64decode(stored["ca.key"]).decode()
        )
    except ApiException as error:
        if error.status != 404:
            raise
        ca = certificates.issue_ca(f"consciousness-engine {environment} CA")
        core.create_namespaced_secret(
            namespace, _secret(CA_SECRET, {"ca.crt": ca.cert_pem, "ca.key": ca.key_pem})
        )
        log.info("   created %s/%s (the environment's own CA)", namespace, CA_SECRET)
    try:
        current = core.read_namespaced_secret(TLS_SECRET, namespace).data
    except ApiException as error:
        if error.status != 404:
            raise
        current = None
    if current is not None and not force and not _needs_reissue(current, ca, namespace):
        return False
    suffixes = ("", f".{namespace}", f".{namespace}.svc", f".{namespace}.svc.cluster.local")

    def server(name: str) -> certificates.Issued:
        names = [f"{name}{s}" for s in suffixes] + [metrics_server_name(environment)]
        return certificates.issue_leaf(ca, name, names, server=True)

    postgres = server("engine-postgres")
    api_cert = server("engine-api")
    engine_client = certificates.issue_leaf(ca, POSTGRES_USER, [], server=False)
    worker = server("engine-worker")
    data = {
        "ca.crt": ca.cert_pem,
        "postgres.crt": postgres.cert_pem,
        "postgres.key": postgres.key_pem,
        "api.crt": api_cert.cert_pem,
        "api.key": api_cert.key_pem,
        "client.crt": engine_client.cert_pem,
        "client.key": engine_client.key_pem,
        "worker.crt": worker.cert_pem,
        "worker.key": worker.key_pem,
    }
    if current is None:
        core.create_namespaced_secret(namespace, _secret(TLS_SECRET, data))
    else:
        core.replace_namespaced_secret(TLS_SECRET, namespace, _secret(TLS_SECRET, data))
    log.info("   issued TLS certificates in %s/%s", namespace, TLS_SECRET)
    return True


@dataclass(frozen=True)
class CertificateRotation:
    seconds_to_roll_engine: float
    seconds_to_reload_postgres: float


def rotate_certificates(target: Target, environment: str) -> CertificateRotation:
    """Issue every leaf certificate again and bring it into use with no downtime.

    engine-api and engine-worker roll (their drain makes that invisible to clients);
    Postgres reloads its certificate in place once the kubelet has refreshed the
    mounted file, so its established connections stay up.
    """
    check_environment(environment)
    api = api_client(target.kubeconfig)
    namespace = namespace_for(environment)
    ensure_tls(api, environment, force=True)
    issued = client.CoreV1Api(api).read_namespaced_secret(TLS_SECRET, namespace).data
    new_postgres = base64.b64decode(issued["postgres.crt"]).decode()
    started = time.monotonic()
    for workload in ENGINE_DEPLOYMENTS:
        _kubectl(target, "-n", namespace, "rollout", "restart", workload)
    rotation = wait_for_rollout(target, namespace, ENGINE_DEPLOYMENTS[1:])
    if rotation.rolled_back:
        raise ClusterError(
            f"{namespace}: the restart with new certificates was rolled back: {rotation.message}"
        )
    rolled = time.monotonic() - started

    # Any change to the pod makes its kubelet sync it now, mounted Secrets included,
    # instead of at its next periodic sync (up to a minute and more away).
    client.CoreV1Api(api).patch_namespaced_pod(
        POSTGRES_POD,
        namespace,
        {"metadata": {"annotations": {"ce.io/tls-issued": str(time.time())}}},
    )

    def postgres_sees_new_certificate() -> bool:
        _, mounted, _ = pod_exec(
            api, namespace, POSTGRES_POD, ["cat", POSTGRES_CERT], container=POSTGRES_CONTAINER
        )
        return mounted.strip() == new_postgres.strip()

    try:
        wait_until(
            postgres_sees_new_certificate,
            timeout=240,
            interval=2,
            describe="the kubelet to refresh Postgres' mounted certificate",
        )
    except WaitTimeout as error:
        raise ClusterError(str(error)) from None
    code, _, err = pod_exec(
        api,
        namespace,
        POSTGRES_POD,
        [*PSQL, "-c", "SELECT pg_reload_conf()"],
        container=POSTGRES_CONTAINER,
    )
    if code != 0:
        raise ClusterError(f"Postgres did not reload its configuration: {err[-300:]}")
    log.info("   %s: certificates re-issued and in use", environment)
    return CertificateRotation(rolled, time.monotonic() - started)


def metrics_server_name(environment: str) -> str:
    """The name every server certificate of an environment also carries, so Prometheus
    can verify any engine pod it scrapes by IP against one name (see infra/monitoring)."""
    return f"engine-metrics.{namespace_for(environment)}.svc"


SERVER_LEAVES = ("postgres.crt", "api.crt", "worker.crt")


def _needs_reissue(stored: dict[str, str], ca: certificates.Issued, namespace: str) -> bool:
    pem = {k: base64.b64decode(v).decode() for k, v in stored.items()}
    if pem.get("ca.crt") != ca.cert_pem:
        return True
    leaves = ("postgres.crt", "api.crt", "client.crt", "worker.crt")
    if any(name not in pem for name in leaves):
        return True
    metrics_name = f"engine-metrics.{namespace}.svc"
    if any(metrics_name not in certificates.dns_names(pem[n]) for n in SERVER_LEAVES):
        return True  # issued before Prometheus scraped the engine
    return min(certificates.seconds_left(pem[name]) for name in leaves) < REISSUE_BEFORE_S


def read_ca(target: Target, environment: str) -> str:
    """The environment's CA certificate (PEM), as issued by ensure_tls."""
    return read_ca_pem(api_client(target.kubeconfig), environment)


def read_ca_pem(api: client.ApiClient, environment: str) -> str:
    secret = client.CoreV1Api(api).read_namespaced_secret(CA_SECRET, namespace_for(environment))
    return base64.b64decode(secret.data["ca.crt"]).decode()


def jwt_key(api: client.ApiClient, environment: str) -> str:
    """The key the environment's engine checks bearer tokens with (its Secret)."""
    secret = client.CoreV1Api(api).read_namespaced_secret(SECRET_NAME, namespace_for(environment))
    return base64.b64decode(secret.data["jwt-key"]).decode()


def _secret(name: str, data: dict[str, str]) -> client.V1Secret:
    return client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=name, labels={"app.kubernetes.io/part-of": "consciousness-engine"}
        ),
        string_data=data,
        type="Opaque",
    )


def apply(target: Target, documents: list[dict[str, Any]]) -> None:
    """Server-side apply; a StatefulSet whose immutable fields changed is recreated.

    Kubernetes refuses most StatefulSet spec changes (volumeClaimTemplates,
    selector, serviceName). We delete the StatefulSet with orphan propagation,
    so its pods and volumes stay and are adopted by the new one, then apply again.
    """
    try:
        _server_side_apply(target, documents)
    except CommandError as failure:
        if IMMUTABLE_STATEFULSET not in failure.output_tail:
            raise
        for document in documents:
            if document["kind"] == "StatefulSet":
                name = document["metadata"]["name"]
                log.info("   %s: immutable fields changed; recreating it (pods kept)", name)
                _kubectl(
                    target,
                    "-n",
                    document["metadata"]["namespace"],
                    "delete",
                    "statefulset",
                    name,
                    "--cascade=orphan",
                    "--wait=true",
                )
        _server_side_apply(target, documents)


def _kubectl(
    target: Target, *arguments: str, timeout: float = 120, input_text: str | None = None
) -> str:
    """kubectl against the target's kubeconfig (the one way this module calls it)."""
    return proc.run(
        [target.kubectl, "--kubeconfig", target.kubeconfig, *arguments],
        timeout=timeout,
        input_text=input_text,
        describe="kubectl " + " ".join(arguments[:4]),
    )


def _server_side_apply(target: Target, documents: list[dict[str, Any]]) -> None:
    _kubectl(
        target,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        FIELD_MANAGER,
        "-f",
        "-",
        timeout=180,
        input_text=yaml.safe_dump_all(documents),
    )


ENGINE_DEPLOYMENTS = ("deployment/engine-api", "deployment/engine-worker")
# engine-api's pods belong to its Argo Rollout: the Deployment only holds their template.
API_ROLLOUT = "engine-api"
WAITED = ("statefulset/engine-postgres", "deployment/engine-worker")


def wait_for_rollout(
    target: Target,
    namespace: str,
    workloads: tuple[str, ...] = WAITED,
    *,
    settle_on_abort: bool = True,
) -> rollouts.RolloutState:
    """Wait for ``workloads``, then for engine-api's Rollout to be healthy or aborted
    (a release Argo Rollouts rolled back); return the Rollout's state.

    Without ``settle_on_abort`` only Healthy ends the wait: when the stable release is
    put back after an abort, the controller marks the new template observed a moment
    before it clears the abort, and that stale "aborted" is not an answer (a run failed
    reading it 3 s after the apply)."""
    for workload in workloads:
        _kubectl(
            target,
            "-n",
            namespace,
            "rollout",
            "status",
            workload,
            f"--timeout={ROLLOUT_TIMEOUT}s",
            timeout=ROLLOUT_TIMEOUT + 30,
        )
    api = api_client(target.kubeconfig)
    last: list[rollouts.RolloutState] = []

    def settled() -> rollouts.RolloutState | None:
        current = rollouts.state(api, namespace, API_ROLLOUT)
        if current is None:
            raise ClusterError(
                f"{namespace} has no Rollout {API_ROLLOUT!r}: is the Argo Rollouts controller "
                "installed (`python -m deployer cluster up` installs it)?"
            )
        last[:] = [current]
        return current if current.healthy or (settle_on_abort and current.rolled_back) else None

    try:
        outcome, _ = wait_until(
            settled,
            timeout=ROLLOUT_TIMEOUT,
            interval=1,
            describe=f"{namespace}/{API_ROLLOUT} rolled out or rolled back",
        )
    except WaitTimeout:
        where = f"{last[0].phase}: {last[0].message}" if last else "no status"
        raise ClusterError(
            f"{namespace}/{API_ROLLOUT} neither finished nor was rolled back in "
            f"{ROLLOUT_TIMEOUT}s ({where})"
        ) from None
    return outcome


def serving_release(api: client.ApiClient, namespace: str) -> EngineImages | None:
    """The release that serves now (engine-api's stable pods), or None before the first."""
    stable = rollouts.stable_images(api, namespace, API_ROLLOUT)
    if "engine-api" not in stable:
        return None
    apps = client.AppsV1Api(api)
    worker = apps.read_namespaced_deployment("engine-worker", namespace)
    postgres = apps.read_namespaced_stateful_set("engine-postgres", namespace)
    containers = {c.name: c.image for c in postgres.spec.template.spec.containers}
    return EngineImages(
        api=stable["engine-api"],
        worker=worker.spec.template.spec.containers[0].image,
        postgres=containers[POSTGRES_CONTAINER],
        revision=stable["engine-api"].rsplit(":", 1)[-1].split("-", 1)[-1],
    )


# What an HPA may scale here: engine-worker's Deployment, engine-api's Argo Rollout.
SCALABLE = ("Deployment", "Rollout")


def keep_autoscaled_replicas(
    documents: list[dict[str, Any]], live: Callable[[str, str, str], int | None]
) -> None:
    """A deploy must not undo the autoscaler: a workload that an HPA scales keeps its
    live replica count (within the HPA's bounds) rather than the manifest's starting
    value, so a rollout under load does not first stop the pods the load needed.
    ``live(namespace, kind, name)`` reads the count, None before the first deploy."""
    workloads = {
        (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]): doc
        for doc in documents
        if doc["kind"] in SCALABLE
    }
    for hpa in (doc for doc in documents if doc["kind"] == "HorizontalPodAutoscaler"):
        ref, spec = hpa["spec"]["scaleTargetRef"], hpa["spec"]
        namespace = hpa["metadata"].get("namespace", "")
        workload = workloads.get((ref["kind"], namespace, ref["name"]))
        if workload is None:
            continue
        current = live(namespace, ref["kind"], ref["name"])
        if current is None:
            continue  # a first deploy starts from the manifest
        kept = min(max(current, spec.get("minReplicas", 1)), spec["maxReplicas"])
        if kept != workload["spec"].get("replicas"):
            log.info(
                "   %s: keeping the autoscaler's %d replicas (the manifest starts at %s)",
                ref["name"],
                kept,
                workload["spec"].get("replicas"),
            )
            workload["spec"]["replicas"] = kept


def live_replicas(api: client.ApiClient) -> Callable[[str, str, str], int | None]:
    """Reads a Deployment's or a Rollout's replica count, or None when it does not exist yet."""
    apps = client.AppsV1Api(api)

    def read(namespace: str, kind: str, name: str) -> int | None:
        if kind == "Rollout":
            rollout = rollouts.read(api, namespace, name)
            return None if rollout is None else int(rollout["spec"].get("replicas", 1))
        try:
            replicas = apps.read_namespaced_deployment(name, namespace).spec.replicas
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return int(replicas or 0)

    return read


def ship_images(target: Target, images: EngineImages) -> EngineImages:
    """Make the images reachable from the target's nodes; return them as the cluster
    names them (a registry's refs when pushed)."""
    if target.registry:
        # The images were built here, so the engine runs: no start-up check again.
        pushed = registry.publish(
            DockerClient(), [images.api, images.worker, images.postgres], target.registry
        )
        return dataclasses.replace(
            images,
            api=pushed[images.api],
            worker=pushed[images.worker],
            postgres=pushed[images.postgres],
        )
    load_images(target, images)
    return images


def load_images(target: Target, images: EngineImages) -> None:
    """Put the images on a kind cluster's nodes (kind skips those already there); a
    cluster that pulls gets them through ``ship_images`` and a registry."""
    if target.kind is None or target.kind_cluster is None:
        return
    # Only where the engine can run: the control plane is tainted against it.
    workers = [
        node
        for node in target.kind.nodes(target.kind_cluster)
        if not node.endswith("-control-plane")
    ]
    target.kind.load_images(
        target.kind_cluster, [images.api, images.worker, images.postgres], workers
    )


def deploy(
    paths: Paths, environment: str, target: Target, images: EngineImages | None = None
) -> EngineImages:
    """Load the images into kind, apply the overlay and wait for the rollout.

    Without ``images`` this checkout's images are built (cached); with them, exactly
    those tags are deployed (a promotion, a rollback, a release under test).
    """
    check_environment(environment)
    log.info("==> Deploying %s", environment)
    if images is None:
        images = build_engine_images(paths, ensure_engine(paths))
    delivery.ensure(paths, target.kubeconfig, target.kubectl, target.registry)
    images = ship_images(target, images)
    documents = render(paths, target.kubectl, environment, images)
    namespaces = [doc for doc in documents if doc["kind"] == "Namespace"]
    apply(target, namespaces)
    api = api_client(target.kubeconfig)
    namespace = namespace_for(environment)
    ensure_secret(api, environment)
    ensure_tls(api, environment)
    previous = serving_release(api, namespace)
    keep_autoscaled_replicas(documents, live_replicas(api))
    started = time.monotonic()
    apply(target, [doc for doc in documents if doc["kind"] != "Namespace"])
    monitoring.publish_engine_ca(target.kubeconfig, environment, read_ca(target, environment))
    outcome = wait_for_rollout(target, namespace)
    if outcome.rolled_back:
        restore(paths, environment, target, images, previous, outcome, started)
    # Only after a good rollout: until then the old pods may still need old objects.
    prune(api, namespace, refs(documents, namespace), PART_OF, FIELD_MANAGER)
    log.info("==> %s deployed (%s)", environment, images.api)
    return images


def restore(
    paths: Paths,
    environment: str,
    target: Target,
    release: EngineImages,
    previous: EngineImages | None,
    outcome: rollouts.RolloutState,
    started: float,
) -> None:
    """Argo Rollouts aborted ``release``: its canary is gone and the stable pods serve.
    Put the previous release back as the desired state too (engine-worker included),
    so that the environment says what it runs; then report the rollback as an error."""
    aborted_after = time.monotonic() - started
    log.error(
        "   Argo Rollouts aborted %s after %.0fs: %s", release.api, aborted_after, outcome.message
    )
    if previous is None:
        raise ClusterError(
            f"the first release of {environment} ({release.api}) was aborted with nothing to "
            f"roll back to: {outcome.message}"
        )
    log.info("==> Rolling %s back to %s", environment, previous.api)
    documents = render(paths, target.kubectl, environment, previous)
    apply(target, [doc for doc in documents if doc["kind"] != "Namespace"])
    restored = wait_for_rollout(target, namespace_for(environment), settle_on_abort=False)
    if not restored.healthy:
        raise ClusterError(
            f"{environment}: rolling back to {previous.api} failed: {restored.message}"
        )
    raise ReleaseRolledBack(
        release.api, previous.api, outcome.message, aborted_after, time.monotonic() - started
    )
