"""Build the engine's runtime images (engine-api, engine-worker, Postgres), offline and cached.

The Dockerfiles are engine/images/*.Dockerfile; this module supplies what they
need: our Debian root file systems as BASE, the pinned wheels from
engine/requirements.txt resolved on the host for CPython 3.11 manylinux (with
ce_engine, precompiled for a read-only root file system), and a CycloneDX SBOM.
Each image is labelled with the hash of its inputs, so a rebuild with no
change is skipped.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from deployer.catalog import ENGINE_RUNTIME_ROOTFS, POSTGRES_ROOTFS
from deployer.errors import DeployerError
from deployer.lower import proc, rootfs, sbom
from deployer.lower.cache import cache_key
from deployer.lower.docker_client import CACHE_LABEL, RELEASE_LABEL, BuildContext, DockerClient
from deployer.settings import Paths, load_versions

log = logging.getLogger(__name__)

WHEEL_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


@dataclass
class EngineImages:
    api: str = ""
    worker: str = ""
    postgres: str = ""
    revision: str = ""
    rebuilt: list[str] = field(default_factory=list)
    image_bytes: dict[str, int] = field(default_factory=dict)
    sbom: Path | None = None  # the CycloneDX document baked into engine-api and -worker


def revision(paths: Paths) -> str:
    """The git revision, plus ``-dirty-<hash>`` when the engine's inputs have local changes:
    a tag must always name exactly the code it runs (and a changed tag rolls the pods)."""
    try:
        output = proc.run(["git", "-C", paths.repo, "rev-parse", "--short=12", "HEAD"], timeout=30)
        changed = proc.run(
            ["git", "-C", paths.repo, "status", "--porcelain", "--untracked-files=all", "engine"],
            timeout=30,
        )
    except (DeployerError, OSError):  # a tarball checkout or no git: the tag says so
        return "unknown"
    rev = output.strip() or "unknown"
    if changed.strip():
        return f"{rev}-dirty-{cache_key(trees=[paths.repo / 'engine'])[:8]}"
    return rev


def engine_version(paths: Paths) -> str:
    init = (paths.repo / "engine" / "src" / "ce_engine" / "__init__.py").read_text()
    return init.split('VERSION = "', 1)[1].split('"', 1)[0]


def site_packages(paths: Paths) -> Path:
    """Install the pinned wheels for the image's CPython 3.11 into a cached folder."""
    requirements = paths.repo / "engine" / "requirements.txt"
    source = paths.repo / "engine" / "src"
    key = cache_key("site-packages", *WHEEL_PLATFORMS, requirements.read_text(), trees=[source])
    target = paths.cache / "engine-site" / key
    if (target / ".complete").exists():
        return target
    # Per process: the delivery pipeline may build beside the acceptance suite.
    staging = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    platforms = [arg for platform in WHEEL_PLATFORMS for arg in ("--platform", platform)]
    proc.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--target",
            staging,
            "--only-binary=:all:",
            *platforms,
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "-r",
            requirements,
        ],
        timeout=900,
        describe="pip install engine wheels",
    )
    shutil.rmtree(staging / "bin", ignore_errors=True)
    shutil.copytree(
        source / "ce_engine", staging / "ce_engine", ignore=shutil.ignore_patterns("__pycache__")
    )
    # Bytecode in the image: a read-only root file system cannot cache it at run time.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "unchecked-hash",
            staging,
        ],
        check=True,
        timeout=600,
    )
    (staging / ".complete").write_text(key)
    if (target / ".complete").exists():  # another process finished first: same content
        shutil.rmtree(staging, ignore_errors=True)
        return target
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def dockerfile(paths: Paths, name: str) -> str:
    """The stack's Dockerfiles live in engine/images/ (checkov scans them there)."""
    return (paths.repo / "engine" / "images" / f"{name}.Dockerfile").read_text()


def _build(
    docker: DockerClient,
    ref: str,
    context: BuildContext,
    args: dict[str, str],
    out: EngineImages,
    *inputs: str,
    release: str = "",
) -> str:
    """Build ``ref`` unless an image with the same inputs exists; return its cache key."""
    key = cache_key(context.dockerfile, *sorted(f"{k}={v}" for k, v in args.items()), *inputs)
    if docker.image_labels(ref).get(CACHE_LABEL) == key:
        log.info("   %s: cached", ref)
    else:
        log.info("   %s: building", ref)
        labels = {CACHE_LABEL: key, **({RELEASE_LABEL: release} if release else {})}
        docker.build(context, ref, labels=labels, args=args)
        out.rebuilt.append(ref)
    out.image_bytes[ref] = docker.image_size(ref)
    return key


def image_refs(paths: Paths, rev: str | None = None) -> EngineImages:
    """The tags a build of this checkout produces: <engine version>-<git revision>."""
    version, rev = engine_version(paths), rev or revision(paths)
    return EngineImages(
        api=f"ce.local/engine-api:{version}-{rev}",
        worker=f"ce.local/engine-worker:{version}-{rev}",
        postgres=postgres_ref(paths),
        revision=rev,
    )


def postgres_key(paths: Paths) -> str:
    """Everything the Postgres image is made of (its base is keyed by its package list)."""
    entrypoint = (paths.repo / "engine" / "postgres" / "pg-entrypoint").read_text()
    return cache_key(
        dockerfile(paths, "postgres"),
        engine_version(paths),
        entrypoint,
        *POSTGRES_ROOTFS.packages,
    )


def postgres_ref(paths: Paths) -> str:
    """The tag carries the inputs' hash: a changed entrypoint must roll the pods."""
    return f"ce.local/engine-postgres:15-{engine_version(paths)}-{postgres_key(paths)[:10]}"


def build_engine_images(
    paths: Paths, docker: DockerClient, rev: str | None = None, release: str = ""
) -> EngineImages:
    """engine-api, engine-worker and Postgres images, tagged <version>-<revision>.

    ``rev`` overrides the git revision (a release candidate built beside the
    current build); older tags are then kept, since the current one is in use.
    ``release`` (the pipeline run) labels the images as a release no pruning removes.
    """
    log.info("==> Engine images")
    versions = load_versions(paths)
    suite, mirror = versions.debian.suite, versions.debian.mirror
    runtime_base = rootfs.ensure_image(ENGINE_RUNTIME_ROOTFS, suite, mirror, paths.rootfs, docker)
    postgres_base = rootfs.ensure_image(POSTGRES_ROOTFS, suite, mirror, paths.rootfs, docker)
    version = engine_version(paths)
    release = rev or revision(paths)
    out = image_refs(paths, release)

    site = site_packages(paths)
    components = sbom.python_components(site)
    dpkg_status = docker.read_file(runtime_base, "/var/lib/dpkg/status")
    components += sbom.debian_components(dpkg_status)
    sbom_file = paths.cache / "engine-site" / f"{site.name}.cdx.json"
    sbom_file.write_text(sbom.cyclonedx("engine-api", version, components))
    out.sbom = sbom_file

    context = BuildContext(dockerfile(paths, "api"))
    context.add("site-packages", site)
    context.add("sbom.cdx.json", sbom_file, 0o644)
    api_args = {"BASE": runtime_base, "VERSION": version, "REVISION": release}
    api_key = _build(docker, out.api, context, api_args, out, site.name, release=release)

    worker_context = BuildContext(dockerfile(paths, "worker"))
    worker_args = {"API_IMAGE": out.api}
    _build(docker, out.worker, worker_context, worker_args, out, api_key, release=release)

    pg_context = BuildContext(dockerfile(paths, "postgres"))
    pg_context.add("pg-entrypoint", paths.repo / "engine" / "postgres" / "pg-entrypoint", 0o755)
    pg_args = {"BASE": postgres_base, "VERSION": version}
    _build(docker, out.postgres, pg_context, pg_args, out, postgres_key(paths))
    if rev is not None:
        return out
    # One tag per commit would pile up on a nightly machine: keep only the current build.
    for current in (out.worker, out.api, out.postgres):
        for old in docker.remove_other_tags(current):
            log.info("   removed old image %s", old)
    return out
