"""Debian root file systems from debootstrap, imported as Docker base images.

No registry is reachable, so every base image starts here: debootstrap a
minimal bookworm with the packages an image needs, strip caches and docs,
tar it and ``docker import`` it. The tarball and the image are keyed by the
suite, mirror and package list.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from deployer.errors import PrerequisiteError
from deployer.lower import proc
from deployer.lower.cache import cache_key
from deployer.lower.debian import ensure_commands
from deployer.lower.docker_client import DockerClient

log = logging.getLogger(__name__)

DEBOOTSTRAP_TIMEOUT = 30 * 60
STRIP = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "var/log",
    "var/cache/debconf",
)


@dataclass(frozen=True)
class RootfsSpec:
    name: str
    packages: tuple[str, ...]

    def key(self, suite: str, mirror: str) -> str:
        return cache_key("debootstrap-minbase", suite, mirror, *sorted(self.packages))

    def image_ref(self, suite: str, mirror: str) -> str:
        return f"ce.local/rootfs-{self.name}:{self.key(suite, mirror)}"


def ensure_image(
    spec: RootfsSpec, suite: str, mirror: str, cache_dir: Path, docker: DockerClient
) -> str:
    """Return the Docker image ref of the root file system, building it if needed."""
    ref = spec.image_ref(suite, mirror)
    if docker.image_exists(ref):
        log.info("   rootfs %s: cached image %s", spec.name, ref)
        return ref
    tarball = cache_dir / f"{spec.name}-{spec.key(suite, mirror)}.tar"
    if not tarball.exists():
        _debootstrap(spec, suite, mirror, cache_dir, tarball)
    log.info("   rootfs %s: importing %s", spec.name, tarball.name)
    docker.import_tarball(tarball, ref)
    return ref


def _debootstrap(spec: RootfsSpec, suite: str, mirror: str, cache_dir: Path, tarball: Path) -> None:
    if os.geteuid() != 0:
        raise PrerequisiteError("debootstrap needs root: run the build as root (sudo)")
    ensure_commands({"debootstrap": "debootstrap"})
    workdir = cache_dir / f".{spec.name}.partial"
    shutil.rmtree(workdir, ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("   rootfs %s: debootstrap %s (%d packages)", spec.name, suite, len(spec.packages))
    try:
        proc.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(spec.packages)}",
                suite,
                workdir,
                mirror,
            ],
            timeout=DEBOOTSTRAP_TIMEOUT,
            describe=f"debootstrap {spec.name}",
        )
        for relative in STRIP:
            target = workdir / relative
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        partial_tar = tarball.with_suffix(".tar.partial")
        proc.run(
            ["tar", "--numeric-owner", "--xattrs", "-C", workdir, "-cf", partial_tar, "."],
            timeout=600,
            describe=f"tar {spec.name}",
        )
        partial_tar.rename(tarball)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
