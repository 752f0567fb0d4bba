"""Build everything a cluster needs, offline, cached by input hashes.

Order: Go programs -> Debian root file systems -> component images -> kind
node image (component images preloaded into its containerd, like kind's own
``build node-image`` but with no registry pulls).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from deployer.catalog import (
    MONITORING_ROOTFS,
    NODE_ROOTFS,
    TOOLBOX_ROOTFS,
    ImageSpec,
    cluster_images,
    go_programs,
)
from deployer.errors import BuildError
from deployer.lower import gobuild, proc, rootfs
from deployer.lower.cache import cache_key
from deployer.lower.docker_client import CACHE_LABEL, BuildContext, DockerClient
from deployer.lower.waiting import wait_until
from deployer.settings import Paths, Versions, load_versions

log = logging.getLogger(__name__)

NODE_IMAGE_REPOSITORY = "ce.local/kind-node"
KEPT_NODE_IMAGES = 2
PRELOAD_CONTAINER = "ce-node-image-preload"


@dataclass
class BuildReport:
    """What was built or reused, and how long each stage took."""

    node_image: str = ""
    kind: Path = Path()
    kubectl: Path = Path()
    stages: dict[str, float] = field(default_factory=dict)
    rebuilt: list[str] = field(default_factory=list)
    image_bytes: dict[str, int] = field(default_factory=dict)


def build_all(paths: Paths, docker: DockerClient) -> BuildReport:
    """Build (or find cached) every binary and image; return the node image ref."""
    report = BuildReport()
    versions = load_versions(paths)

    started = time.monotonic()
    log.info("==> Go programs (cache: %s)", paths.go_bin)
    go = gobuild.go_version()
    built = {
        name: gobuild.build(program, paths.go_bin, go)
        for name, program in go_programs(paths, versions).items()
    }
    report.rebuilt += [name for name, result in built.items() if not result.cached]
    report.kind = built["kind"].binary("kind")
    report.kubectl = built["kubernetes"].binary("kubectl")
    report.stages["go_programs_s"] = time.monotonic() - started

    specs = cluster_images(paths, versions)
    check_kubeadm_images(built["kubernetes"], versions, specs)

    started = time.monotonic()
    log.info("==> Debian root file systems (%s)", versions.debian.suite)
    bases = {
        spec.name: rootfs.ensure_image(
            spec, versions.debian.suite, versions.debian.mirror, paths.rootfs, docker
        )
        for spec in (NODE_ROOTFS, TOOLBOX_ROOTFS, MONITORING_ROOTFS)
    }
    report.stages["rootfs_s"] = time.monotonic() - started

    started = time.monotonic()
    log.info("==> Cluster component images")
    image_keys: dict[str, str] = {}
    for spec in specs:
        image_keys[spec.ref] = _component_image(spec, bases, built, docker, report)
        report.image_bytes[spec.ref] = docker.image_size(spec.ref)
    report.stages["component_images_s"] = time.monotonic() - started

    started = time.monotonic()
    log.info("==> kind node image")
    report.node_image = _node_image(
        paths, versions, bases["node"], built, image_keys, docker, report
    )
    report.image_bytes[report.node_image] = docker.image_size(report.node_image)
    report.stages["node_image_s"] = time.monotonic() - started
    if not report.rebuilt:
        log.info("   everything was cached: nothing rebuilt")
    else:
        log.info("   rebuilt: %s", ", ".join(report.rebuilt))
    return report


def check_kubeadm_images(
    kubernetes: gobuild.BuiltProgram, versions: Versions, specs: list[ImageSpec]
) -> None:
    """Fail the build if kubeadm would pull an image we do not preload (nothing can be pulled)."""
    wanted = proc.run(
        [
            kubernetes.binary("kubeadm"),
            "config",
            "images",
            "list",
            "--kubernetes-version",
            versions.kubernetes,
        ],
        timeout=60,
        describe="kubeadm config images list",
    ).split()
    ours = {spec.ref for spec in specs}
    missing = [image for image in wanted if image not in ours]
    if missing:
        raise BuildError(
            f"kubeadm {versions.kubernetes} needs {', '.join(missing)} which the catalog does not "
            "build; align the pins under infra/kind/components/ (etcd, coredns) or "
            "infra/versions.toml (pause)"
        )


def _component_image(
    spec: ImageSpec,
    bases: dict[str, str],
    built: dict[str, gobuild.BuiltProgram],
    docker: DockerClient,
    report: BuildReport,
) -> str:
    base = "scratch" if spec.base == "scratch" else bases[spec.base]
    lines = [f"FROM {base}"]
    if spec.trim:  # bash runs the removal (bash itself last), then one flat layer of the rest
        removal = "shopt -s nullglob && rm -rf " + " ".join(spec.trim)
        lines = [
            f"FROM {base} AS trimmed",
            f'RUN ["/usr/bin/bash", "-ec", "{removal}"]',
            "FROM scratch",
            "COPY --from=trimmed / /",
        ]
    context = BuildContext("")
    for program, binary in spec.binaries:
        context.add(binary, built[program].binary(binary))
        lines.append(f"COPY {binary} /usr/local/bin/{binary}")
    lines.append("ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if spec.entrypoint:
        lines.append("ENTRYPOINT [" + ", ".join(f'"{part}"' for part in spec.entrypoint) + "]")
    if spec.user:
        lines.append(f"USER {spec.user}")
    context.dockerfile = "\n".join(lines) + "\n"
    key = cache_key(
        context.dockerfile,
        *(f"{program}:{built[program].directory.name}" for program, _ in spec.binaries),
    )
    if docker.image_labels(spec.ref).get(CACHE_LABEL) == key:
        log.info("   %s: cached", spec.ref)
        return key
    log.info("   %s: building", spec.ref)
    docker.build(context, spec.ref, labels={CACHE_LABEL: key})
    report.rebuilt.append(spec.ref)
    return key


NODE_STAGE_DOCKERFILE = """\
FROM {base}
COPY files/ /
COPY kubeadm kubelet kubectl /usr/bin/
COPY runc-capfilter /usr/local/bin/runc-capfilter
COPY crictl /usr/local/bin/crictl
RUN echo "{version}" > /kind/version \\
 && chmod 0755 /usr/local/bin/entrypoint \\
 && find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete \\
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \\
          /lib/systemd/system/local-fs.target.wants/* \\
          /lib/systemd/system/sockets.target.wants/*udev* \\
          /lib/systemd/system/sockets.target.wants/*initctl* \\
          /lib/systemd/system/basic.target.wants/* \\
 && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \\
 && systemctl enable kubelet.service containerd.service \\
 && systemctl mask systemd-binfmt.service getty@tty1.service console-getty.service \\
 && mkdir -p /etc/kubernetes/manifests /etc/cni/net.d /opt/cni \\
 && ln -s /usr/lib/cni /opt/cni/bin
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
"""


def _node_image(
    paths: Paths,
    versions: Versions,
    base: str,
    built: dict[str, gobuild.BuiltProgram],
    image_keys: dict[str, str],
    docker: DockerClient,
    report: BuildReport,
) -> str:
    dockerfile = NODE_STAGE_DOCKERFILE.format(base=base, version=versions.kubernetes)
    key = cache_key(
        dockerfile,
        built["kubernetes"].directory.name,
        built["runc-capfilter"].directory.name,
        built["cri-tools"].directory.name,
        *sorted(f"{ref}={image_key}" for ref, image_key in image_keys.items()),
        trees=[paths.node_image_files],
    )
    ref = f"{NODE_IMAGE_REPOSITORY}:{versions.kubernetes}-{key}"
    stage_ref = f"{NODE_IMAGE_REPOSITORY}-stage:{key}"
    if docker.image_exists(ref):
        log.info("   %s: cached", ref)
        forget_older_node_images(paths, docker, {ref, stage_ref})
        return ref
    context = BuildContext(dockerfile)
    context.add("files", paths.node_image_files)
    for binary in ("kubeadm", "kubelet", "kubectl"):
        context.add(binary, built["kubernetes"].binary(binary))
    context.add("runc-capfilter", built["runc-capfilter"].binary("runc-capfilter"))
    context.add("crictl", built["cri-tools"].binary("crictl"))
    log.info("   stage 1: node file system")
    docker.build(context, stage_ref, labels={CACHE_LABEL: key})

    archive = paths.cache / "images" / f"cluster-images-{key}.tar"
    archive.parent.mkdir(parents=True, exist_ok=True)
    if not archive.exists():
        log.info("   stage 2: saving %d component images", len(image_keys))
        docker.save(sorted(image_keys), archive)
    log.info("   stage 3: preloading images into the node's containerd")
    container = docker.run_detached(
        stage_ref,
        PRELOAD_CONTAINER,
        [],
        entrypoint=["/bin/sleep", "infinity"],
        privileged=True,
        network_mode="none",
        tmpfs={"/run": "", "/tmp": ""},
    )
    try:
        docker.put_file(container, archive, "/kind")
        docker.exec(
            container, ["sh", "-c", "containerd >/tmp/containerd.log 2>&1 &"], "start containerd"
        )

        def containerd_ready() -> bool:
            return bool(container.exec_run(["ctr", "version"]).exit_code == 0)

        wait_until(
            containerd_ready, timeout=60, interval=0.5, describe="containerd in the build container"
        )
        docker.exec(
            container,
            [
                "ctr",
                "--namespace=k8s.io",
                "images",
                "import",
                "--all-platforms",
                "--no-unpack",
                "--digests",
                f"/kind/{archive.name}",
            ],
            "ctr images import",
        )
        listed = docker.exec(
            container, ["ctr", "--namespace=k8s.io", "images", "ls", "-q"], "ctr images ls"
        )
        missing = [ref for ref in image_keys if ref not in listed]
        if missing:
            raise BuildError(f"images missing from the node's containerd after import: {missing}")
        docker.exec(
            container,
            ["sh", "-c", f"pkill containerd; rm -f /kind/{archive.name}"],
            "stop containerd",
        )
        wait_until(
            # sleep (PID 1) does not reap, so the exited containerd lingers as a zombie:
            # wait for its socket to stop answering instead of for the process entry.
            lambda: container.exec_run(["ctr", "version"]).exit_code != 0,
            timeout=30,
            interval=0.5,
            describe="containerd to stop",
        )
        container.stop(timeout=5)
        docker.commit(
            container,
            ref,
            changes=['ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]'],
            labels={CACHE_LABEL: key},
        )
    finally:
        docker.remove_container(PRELOAD_CONTAINER)
    report.rebuilt.append(ref)
    forget_older_node_images(paths, docker, {ref, stage_ref})
    return ref


def forget_older_node_images(paths: Paths, docker: DockerClient, current: set[str]) -> None:
    """Each change to the node's files makes a new 1.8-GB node image and a 1.2-GB archive
    of its preloads; kept, they took 15 GB of this machine in two days. The archive is
    inside the image once it is built; of the images, the ``current`` ones and the newest
    two stay (a negative control builds its own, and the main one is not built again
    after it)."""
    for archive in (paths.cache / "images").glob("cluster-images-*.tar"):
        log.info("   removed %s (inside its node image now)", archive.name)
        archive.unlink()
    for repository in (NODE_IMAGE_REPOSITORY, f"{NODE_IMAGE_REPOSITORY}-stage"):
        for old in docker.remove_all_but_newest(repository, KEPT_NODE_IMAGES, current):
            log.info("   removed old image %s", old)
