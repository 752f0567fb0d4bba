"""Cluster lifecycle on kind: up (with cleanup on failure), down, status."""

from __future__ import annotations

import logging
import re
import shutil
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from deployer.actions import cluster_lease, cluster_security, delivery, monitoring, pod_network
from deployer.actions.build import build_all
from deployer.actions.cluster_security import NODE_PATH, security_dir
from deployer.actions.deploy import Target, load_images
from deployer.actions.engine import ensure_engine
from deployer.actions.engine_images import EngineImages, build_engine_images
from deployer.catalog import go_programs
from deployer.errors import ClusterError, ConfigError, DeployerError, PrerequisiteError
from deployer.lower import gobuild, proc
from deployer.lower.kind import Kind
from deployer.lower.kube import api_client, node_states, pinned_context, unready_workloads
from deployer.lower.waiting import WaitTimeout, wait_until
from deployer.settings import Paths, load_versions

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")
MAX_WORKERS = 6
MIN_FREE_DISK_BYTES = 8 * 1024**3
READY_TIMEOUT = 420.0


@dataclass(frozen=True)
class ClusterRequest:
    name: str = "ce"
    workers: int = 2
    api_port: int = 0  # 0: kind picks a free port on 127.0.0.1
    keep_on_failure: bool = False
    # Build the engine's images while the cluster is created and put them on its workers
    # while the add-ons start: the first deploy then has nothing to build or load.
    with_engine: bool = False
    # A suite run's cluster, deleted at its end: if the run is killed, the next run may
    # delete the leftover (cluster_lease). `cluster up` makes kept ones.
    ephemeral: bool = False

    def validate(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ConfigError(
                f"cluster name {self.name!r} is not valid: use 1-32 lowercase letters, digits, '-'"
            )
        if not 0 <= self.workers <= MAX_WORKERS:
            raise ConfigError(f"--workers must be between 0 and {MAX_WORKERS}, got {self.workers}")
        if self.api_port and not 1024 <= self.api_port <= 65535:
            raise ConfigError(f"--api-port must be 1024-65535 (or 0 for any), got {self.api_port}")


@dataclass
class ClusterHandle:
    """What the suite needs to reach a running cluster."""

    name: str
    kubeconfig: Path
    kind: Kind
    kubectl: Path
    seconds_to_ready: float = 0.0
    engine_images: EngineImages | None = None  # on every worker already (``with_engine``)


def cluster_dir(paths: Paths, name: str) -> Path:
    return paths.clusters / name


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def render_kind_config(paths: Paths, request: ClusterRequest) -> str:
    config = yaml.safe_load((paths.repo / "infra" / "kind" / "cluster.yaml").read_text())
    config["name"] = request.name
    config.setdefault("networking", {})["apiServerPort"] = request.api_port
    control_plane = {
        "role": "control-plane",
        # Encryption keys and audit policy (cluster_security.prepare), read by the API server.
        "extraMounts": [
            {
                "hostPath": str(security_dir(cluster_dir(paths, request.name))),
                "containerPath": NODE_PATH,
                "readOnly": True,
            }
        ],
    }
    config["nodes"] = [control_plane] + [{"role": "worker"}] * request.workers
    return yaml.safe_dump(config, sort_keys=False)


def preflight(paths: Paths, request: ClusterRequest) -> None:
    """Refuse early, before anything is created, with a message that says what to do."""
    request.validate()
    if request.api_port and not port_is_free(request.api_port):
        raise ConfigError(
            f"port {request.api_port} on 127.0.0.1 is already in use; pick another --api-port "
            "or 0 to let kind choose"
        )
    for folder in (Path("/var/lib/docker"), paths.cache):
        probe = folder if folder.exists() else folder.parent
        free = shutil.disk_usage(probe).free
        if free < MIN_FREE_DISK_BYTES:
            raise PrerequisiteError(
                f"only {free / 1024**3:.1f} GiB free under {probe}; a 3-node cluster and its "
                f"images need {MIN_FREE_DISK_BYTES / 1024**3:.0f} GiB. Free disk space "
                "(docker system prune, or remove old caches) and retry"
            )


def up(paths: Paths, request: ClusterRequest) -> ClusterHandle:
    """Build (cached), create the cluster, install add-ons and wait until it is usable.

    On any failure the cluster is deleted unless ``keep_on_failure`` is set.
    """
    preflight(paths, request)
    docker = ensure_engine(paths)
    built = build_all(paths, docker)
    kind = Kind(built.kind)
    if request.name in kind.clusters():
        clear_the_way(paths, request.name, kind)
    workdir = cluster_dir(paths, request.name)
    shutil.rmtree(workdir, ignore_errors=True)  # left by a cluster deleted outside the deployer
    workdir.mkdir(parents=True, exist_ok=True)
    cluster_security.prepare(paths, workdir)
    config_path = workdir / "kind.yaml"
    config_path.write_text(render_kind_config(paths, request))
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.unlink(missing_ok=True)
    handle = ClusterHandle(request.name, kubeconfig, kind, built.kubectl)
    cluster_lease.write_record(paths, request.name, request.ephemeral)
    log.info("==> Creating cluster %r: 1 control plane + %d workers", request.name, request.workers)
    started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-images")
    try:
        engine_build = (
            pool.submit(build_engine_images, paths, docker) if request.with_engine else None
        )
        kind.create(
            request.name, built.node_image, config_path, kubeconfig, retain=request.keep_on_failure
        )
        install_addons(paths, handle)
        wait_for_nodes(handle, expected_nodes=1 + request.workers)
        # The monitoring plane and the delivery controller start while the system
        # workloads settle; all are awaited.
        monitoring_started = time.monotonic()
        monitoring.install(paths, kubeconfig, built.kubectl)
        delivery.install(paths, kubeconfig, built.kubectl)
        preload = pool.submit(_preload, handle, engine_build) if engine_build else None
        wait_for_system_workloads(handle)
        pod_network.wait_converged(kubeconfig, docker)
        monitoring.wait_ready(kubeconfig, built.kubectl, monitoring_started)
        delivery.wait_ready(kubeconfig, monitoring_started)
        handle.engine_images = preload.result() if preload else None
    except (DeployerError, WaitTimeout, KeyboardInterrupt) as error:
        if request.keep_on_failure:
            log.error("cluster %r kept for inspection (--keep-on-failure)", request.name)
        else:
            log.error("cluster creation failed; deleting %r", request.name)
            _delete_quietly(kind, request.name)
            shutil.rmtree(workdir, ignore_errors=True)
            cluster_lease.forget(paths, request.name)
        raise ClusterError(
            f"cluster {request.name!r} did not come up: {error}\n"
            f"Logs: {paths.logs}. Retry with --keep-on-failure to inspect the nodes "
            f"(docker exec -it {request.name}-control-plane bash)."
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    handle.seconds_to_ready = time.monotonic() - started
    log.info(
        "==> Cluster %r ready in %.0fs (kubeconfig: %s)",
        request.name,
        handle.seconds_to_ready,
        kubeconfig,
    )
    return handle


def clear_the_way(paths: Paths, name: str, kind: Kind) -> None:
    """A cluster of this name exists: wait while another run uses it, delete it when an
    interrupted run left it, refuse when someone kept it."""
    kubeconfig = cluster_dir(paths, name) / "kubeconfig"
    still_there = cluster_lease.await_no_live_run(
        paths, name, kubeconfig, lambda: name in kind.clusters()
    )
    if not still_there:
        return
    if cluster_lease.leftover_of_interrupted_run(paths, name):
        log.warning("cluster %r was left by an interrupted run meant to delete it: deleting", name)
        kind.delete(name)
        shutil.rmtree(cluster_dir(paths, name), ignore_errors=True)
        cluster_lease.forget(paths, name)
        return
    raise ConfigError(
        f"a kind cluster named {name!r} already exists and was kept; delete it with "
        f"`python -m deployer cluster down --name {name}` or reuse it"
    )


def _preload(handle: ClusterHandle, engine_build: Future[EngineImages]) -> EngineImages | None:
    """The engine's images on the workers, or None (logged) if they could not be built or
    loaded: that is the first deploy's error to report, not the cluster's."""
    try:
        images = engine_build.result()
        log.info("   loading the engine's images onto the workers while the add-ons start")
        load_images(Target(handle.kubeconfig, handle.kubectl, handle.kind, handle.name), images)
    except Exception as error:  # noqa: BLE001 - the first deploy builds again and reports it
        log.warning("the engine's images were not preloaded (deploy builds them): %s", error)
        return None
    return images


def _delete_quietly(kind: Kind, name: str) -> None:
    try:
        kind.delete(name)
    except DeployerError as error:
        log.error("could not delete cluster %r: %s", name, error)


def install_addons(paths: Paths, handle: ClusterHandle) -> None:
    for manifest in sorted(paths.addons.glob("*.yaml")):
        log.info("   add-on %s", manifest.stem)
        proc.run(
            [handle.kubectl, "--kubeconfig", handle.kubeconfig, "apply", "-f", manifest],
            timeout=120,
            describe=f"kubectl apply {manifest.name}",
        )


def wait_for_nodes(handle: ClusterHandle, expected_nodes: int) -> None:
    api = api_client(handle.kubeconfig)

    def nodes_ready() -> bool:
        states = node_states(api)
        return len(states) == expected_nodes and all(state.ready for state in states)

    _, seconds = wait_until(
        nodes_ready, timeout=READY_TIMEOUT, interval=2, describe=f"{expected_nodes} Ready nodes"
    )
    log.info("   %d nodes Ready after %.0fs", expected_nodes, seconds)


def wait_for_system_workloads(handle: ClusterHandle) -> None:
    """Every system workload available (CNI, DNS, storage, metrics)."""
    api = api_client(handle.kubeconfig)
    for namespace in ("kube-system", "local-path-storage"):

        def available(ns: str = namespace) -> bool:
            return not unready_workloads(api, ns)

        _, seconds = wait_until(
            available,
            timeout=READY_TIMEOUT,
            interval=2,
            describe=f"workloads in {namespace}",
        )
        log.info("   %s workloads available after %.0fs", namespace, seconds)


def existing(paths: Paths, name: str) -> ClusterHandle:
    """Attach to a cluster made by an earlier `up` (for --reuse-cluster and `status`)."""
    kind, kubectl = built_tools(paths)
    kubeconfig = cluster_dir(paths, name) / "kubeconfig"
    if name not in kind.clusters() or not kubeconfig.exists():
        raise ConfigError(
            f"no cluster named {name!r}; create it with `python -m deployer cluster up`"
        )
    return ClusterHandle(name, kubeconfig, kind, kubectl)


def pulling_target(paths: Paths, kubeconfig: Path, context: str | None, registry: str) -> Target:
    """A cluster this deployer did not create, reached by its kubeconfig (``context``
    pinned in a copy of our own): its nodes pull what ``registry`` is given."""
    if not kubeconfig.is_file():
        raise ConfigError(f"no kubeconfig at {kubeconfig}")
    _, kubectl = built_tools(paths)
    pinned = pinned_context(kubeconfig, context, paths.cache / "kubeconfigs")
    return Target(pinned, kubectl, registry=registry)


def built_tools(paths: Paths) -> tuple[Kind, Path]:
    """kind and kubectl from the Go cache (built on first use)."""
    programs = go_programs(paths, load_versions(paths))
    go = gobuild.go_version()
    kind = gobuild.build(programs["kind"], paths.go_bin, go)
    kubernetes = gobuild.build(programs["kubernetes"], paths.go_bin, go)
    return Kind(kind.binary("kind")), kubernetes.binary("kubectl")


def down(paths: Paths, name: str, owner: bool = False) -> bool:
    """Delete the cluster; return False when there was none. Refused while a run other
    than the caller (``owner``) uses it."""
    kind, _ = built_tools(paths)
    if name not in kind.clusters():
        return False
    holder = None if owner else cluster_lease.live_holder(cluster_dir(paths, name) / "kubeconfig")
    if holder is not None:
        raise ConfigError(
            f"cluster {name!r} is in use by a run ({holder}); it deletes its cluster when it "
            "ends, or stop that run first"
        )
    kind.delete(name)
    shutil.rmtree(cluster_dir(paths, name), ignore_errors=True)
    cluster_lease.forget(paths, name, only_if_mine=owner)
    return True


def status(paths: Paths, name: str) -> list[str]:
    handle = existing(paths, name)
    api = api_client(handle.kubeconfig)
    return [f"cluster {name}: kubeconfig {handle.kubeconfig}"] + [
        f"  {state.name:28} {'Ready' if state.ready else 'NotReady':9} "
        f"{','.join(state.roles):14} {state.internal_ip:15} {state.kubelet_version}"
        for state in node_states(api)
    ]
