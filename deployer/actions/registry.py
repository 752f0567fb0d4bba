"""Images for clusters this deployer did not create, through a container registry.

A kind cluster built here gets its images by `kind load`. Any other cluster (EKS, GKE,
AKS, or a kind cluster made elsewhere) pulls them: `deploy --registry R` pushes every
image it deploys to R and points the manifests at ``R/<name>:<tag>``.

To exercise that path on this machine, `registry up` runs CNCF Distribution (the
registry behind Docker Hub's ``registry:2``), built here from its Go module, in a
container published on 127.0.0.1:5001 and attached to kind's network. Every node image
built here maps ``localhost:5001`` to that container (containerd's ``hosts.toml``), so
a cluster pulls ``localhost:5001/...`` exactly as an EKS node pulls from ECR.
"""

from __future__ import annotations

import logging
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

from deployer.errors import PrerequisiteError
from deployer.lower import gobuild
from deployer.lower.cache import cache_key
from deployer.lower.docker_client import CACHE_LABEL, BuildContext, DockerClient
from deployer.lower.waiting import WaitTimeout, wait_until
from deployer.settings import Paths, go_module_version

log = logging.getLogger(__name__)

MODULE = "github.com/distribution/distribution/v3"
CONTAINER = "ce-registry"
NETWORK = "kind"  # the docker network kind's nodes are on
LOCAL_PORT = 5001  # the node image's containerd maps localhost:5001 to this registry
LOCAL = f"localhost:{LOCAL_PORT}"
CONFIG = "/etc/distribution/config.yml"
UID = "65534"


def module_dir(paths: Paths) -> Path:
    return paths.repo / "infra" / "registry"


def program(paths: Paths) -> gobuild.GoProgram:
    """Built on first use only: the main build and the cold-build budget do not carry it."""
    return gobuild.GoProgram(
        "registry", module_dir(paths), (("registry", f"{MODULE}/cmd/registry"),)
    )


def image_ref(paths: Paths) -> str:
    return f"ce.local/registry:{go_module_version(module_dir(paths) / 'go.mod', MODULE)}"


def in_registry(ref: str, registry: str) -> str:
    """``ce.local/engine-api:1.0`` as the registry names it: ``<registry>/engine-api:1.0``.
    A ref already in the registry is unchanged, so a release read back from a cluster can
    be deployed again."""
    prefix = registry.rstrip("/") + "/"
    if ref.startswith(prefix):
        return ref
    first, _, rest = ref.partition("/")
    is_host = "." in first or ":" in first or first == "localhost"
    return prefix + (rest if rest and is_host else ref)


def publish(docker: DockerClient, refs: list[str], registry: str) -> dict[str, str]:
    """Push each local image to ``registry``; return local ref -> registry ref."""
    pushed = {}
    for ref in dict.fromkeys(refs):
        target = in_registry(ref, registry)
        if target == ref and not docker.image_exists(ref):
            pushed[ref] = ref  # already the registry's (read back from the cluster)
            continue
        log.info("   pushing %s", target)
        digest = docker.push(ref, target)
        log.debug("   %s is %s", target, digest)
        pushed[ref] = target
    return pushed


def build_image(paths: Paths, docker: DockerClient) -> str:
    """scratch + the registry binary + our config, non-root; cached by its inputs."""
    built = gobuild.build(program(paths), paths.go_bin, gobuild.go_version())
    ref = image_ref(paths)
    context = BuildContext("")
    context.add("registry", built.binary("registry"))
    context.add("config.yml", module_dir(paths) / "config.yml", mode=0o644)
    context.dockerfile = (
        "FROM scratch\n"
        "COPY registry /usr/local/bin/registry\n"
        f"COPY config.yml {CONFIG}\n"
        f"USER {UID}\n"
        "EXPOSE 5000\n"
        f'ENTRYPOINT ["/usr/local/bin/registry", "serve", "{CONFIG}"]\n'
    )
    config = (module_dir(paths) / "config.yml").read_text()
    key = cache_key(context.dockerfile, built.directory.name, config)
    if docker.image_labels(ref).get(CACHE_LABEL) != key:
        log.info("   %s: building", ref)
        docker.build(context, ref, labels={CACHE_LABEL: key})
    return ref


def up(paths: Paths, docker: DockerClient) -> str:
    """Run the local registry (idempotent); return the name clusters pull it by."""
    log.info("==> Local registry (CNCF Distribution) on 127.0.0.1:%d", LOCAL_PORT)
    ref = build_image(paths, docker)
    if docker.container_running(CONTAINER, ref):
        log.info("   %s already running", CONTAINER)
        return LOCAL
    docker.remove_container(CONTAINER)
    check_port_free(LOCAL_PORT)
    storage = paths.cache / "registry"
    storage.mkdir(parents=True, exist_ok=True)
    os.chown(storage, int(UID), int(UID))  # the registry runs as nobody
    docker.ensure_network(NETWORK)
    docker.run_detached(
        ref,
        CONTAINER,
        [],
        network=NETWORK,
        ports={"5000/tcp": ("127.0.0.1", LOCAL_PORT)},
        volumes={str(storage): {"bind": "/var/lib/registry", "mode": "rw"}},
        user=f"{UID}:{UID}",
        restart_policy={"Name": "unless-stopped"},
    )
    try:
        wait_until(answers, timeout=60, interval=1, describe="the local registry's /v2/")
    except WaitTimeout:
        logs = docker.container_logs(CONTAINER)[-1500:]
        docker.remove_container(CONTAINER)
        raise PrerequisiteError(f"the local registry did not start: {logs}") from None
    log.info("   registry ready: push to %s", LOCAL)
    return LOCAL


def answers() -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{LOCAL_PORT}/v2/", timeout=3) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise PrerequisiteError(
                f"127.0.0.1:{port} is in use by another program; the local registry needs it "
                "(the node image maps localhost:5001 to it): stop that program first"
            ) from None


def down(docker: DockerClient) -> bool:
    """Remove the registry's container (its storage stays in the cache)."""
    existed = docker.container_running(CONTAINER, None)
    docker.remove_container(CONTAINER)
    return existed
