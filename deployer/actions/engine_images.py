"""Build the engine's runtime images (engine-api, engine-worker, Postgres), offline and cached.

engine-api/-worker: a multi-stage build. The first stage is the Debian python3
root file system; it copies out only the interpreter, the standard library
(minus tests and tooling), the shared libraries and CA certificates. The
final stage starts from scratch: no shell, no package manager, no pip; a
numeric non-root user; precompiled bytecode so a read-only root file system
works. Python wheels are resolved on the host from engine/requirements.txt
(pinned) for CPython 3.11 manylinux, and an SBOM (CycloneDX) is written into
the image.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from deployer.catalog import ENGINE_RUNTIME_ROOTFS, POSTGRES_ROOTFS
from deployer.lower import proc, rootfs, sbom
from deployer.lower.cache import cache_key
from deployer.lower.docker_client import CACHE_LABEL, BuildContext, DockerClient
from deployer.settings import Paths, load_versions

log = logging.getLogger(__name__)

ENGINE_UID = 10001
POSTGRES_UID = 10002
WHEEL_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
PRUNED_STDLIB = (
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "pydoc_data",
    "distutils",
    "venv",
    "unittest/test",
    "config-3.11-x86_64-linux-gnu",
)
PRUNED_LIBS = (
    "perl-base",
    "perl",
    "gconv",
    "libapt-pkg*",
    "libapt-private*",
    "libdb-*",
    "libperl*",
    "audit",
    "e2fsprogs",
)


@dataclass
class EngineImages:
    api: str = ""
    worker: str = ""
    postgres: str = ""
    rebuilt: list[str] = field(default_factory=list)
    image_bytes: dict[str, int] = field(default_factory=dict)


def revision(paths: Paths) -> str:
    try:
        output = proc.run(["git", "-C", paths.repo, "rev-parse", "--short=12", "HEAD"], timeout=30)
    except Exception:  # noqa: BLE001 - a tarball checkout has no git; the tag says so
        return "unknown"
    return output.strip() or "unknown"


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
    staging = target.with_suffix(".partial")
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
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


RUNTIME_DOCKERFILE = """\
FROM {base} AS runtime-files
RUN ["/bin/sh", "-ec", "\\
  mkdir -p /runtime/usr/bin /runtime/usr/lib /runtime/etc /runtime/tmp /runtime/usr/share/sbom && \\
  cp -a /usr/bin/python3.11 /runtime/usr/bin/ && \\
  cp -a /usr/lib/python3.11 /runtime/usr/lib/ && \\
  cd /runtime/usr/lib/python3.11 && rm -rf {pruned_stdlib} && \\
  cp -a /usr/lib/x86_64-linux-gnu /runtime/usr/lib/ && \\
  cd /runtime/usr/lib/x86_64-linux-gnu && rm -rf {pruned_libs} && \\
  cp -a /usr/lib64 /runtime/usr/ && \\
  ln -s usr/bin /runtime/bin && ln -s usr/lib /runtime/lib && ln -s usr/lib64 /runtime/lib64 && \\
  cp -a /etc/ssl /runtime/etc/ && \\
  echo 'engine:x:{uid}:{uid}:engine:/nonexistent:/nonexistent' > /runtime/etc/passwd && \\
  echo 'engine:x:{uid}:' > /runtime/etc/group && \\
  chmod 1777 /runtime/tmp"]

FROM scratch
COPY --from=runtime-files /runtime/ /
COPY site-packages/ /opt/engine/site-packages/
COPY sbom.cdx.json /usr/share/sbom/engine.cdx.json
ENV PYTHONPATH=/opt/engine/site-packages PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \\
    PATH=/usr/bin LANG=C.UTF-8 ENGINE_REVISION={revision}
USER {uid}:{uid}
EXPOSE 8080
ENTRYPOINT ["/usr/bin/python3.11", "-m", "ce_engine.api"]
LABEL org.opencontainers.image.title="engine-api" \\
      org.opencontainers.image.version="{version}" \\
      org.opencontainers.image.revision="{revision}" \\
      org.opencontainers.image.source="consciousness-engine/engine" \\
      io.consciousness-engine.sbom="/usr/share/sbom/engine.cdx.json"
"""

WORKER_DOCKERFILE = """\
FROM {api}
EXPOSE 9090
ENTRYPOINT ["/usr/bin/python3.11", "-m", "ce_engine.worker"]
LABEL org.opencontainers.image.title="engine-worker"
"""

POSTGRES_DOCKERFILE = """\
FROM {base}
COPY pg-entrypoint /usr/local/bin/pg-entrypoint
RUN ["/bin/sh", "-ec", "\\
  groupadd --gid {uid} engine-db && useradd --uid {uid} --gid {uid} --no-create-home engine-db && \\
  mkdir -p /var/lib/postgresql/data && chown {uid}:{uid} /var/lib/postgresql/data"]
USER {uid}:{uid}
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/pg-entrypoint"]
LABEL org.opencontainers.image.title="engine-postgres" org.opencontainers.image.version="{version}"
"""


def _build(
    docker: DockerClient, ref: str, context: BuildContext, key: str, out: EngineImages
) -> None:
    if docker.image_labels(ref).get(CACHE_LABEL) == key:
        log.info("   %s: cached", ref)
    else:
        log.info("   %s: building", ref)
        docker.build(context, ref, labels={CACHE_LABEL: key})
        out.rebuilt.append(ref)
    out.image_bytes[ref] = docker.image_size(ref)


def image_refs(paths: Paths) -> EngineImages:
    """The tags a build of this checkout produces: <engine version>-<git revision>."""
    version, rev = engine_version(paths), revision(paths)
    return EngineImages(
        api=f"ce.local/engine-api:{version}-{rev}",
        worker=f"ce.local/engine-worker:{version}-{rev}",
        postgres=postgres_ref(paths),
    )


def postgres_key(paths: Paths) -> str:
    """Everything the Postgres image is made of (its base is keyed by its package list)."""
    entrypoint = (paths.repo / "engine" / "postgres" / "pg-entrypoint").read_text()
    return cache_key(
        POSTGRES_DOCKERFILE,
        str(POSTGRES_UID),
        engine_version(paths),
        entrypoint,
        *POSTGRES_ROOTFS.packages,
    )


def postgres_ref(paths: Paths) -> str:
    """The tag carries the inputs' hash: a changed entrypoint must roll the pods."""
    return f"ce.local/engine-postgres:15-{engine_version(paths)}-{postgres_key(paths)[:10]}"


def build_engine_images(paths: Paths, docker: DockerClient) -> EngineImages:
    """engine-api, engine-worker and Postgres images, tagged <version>-<revision>."""
    log.info("==> Engine images")
    versions = load_versions(paths)
    suite, mirror = versions.debian.suite, versions.debian.mirror
    runtime_base = rootfs.ensure_image(ENGINE_RUNTIME_ROOTFS, suite, mirror, paths.rootfs, docker)
    postgres_base = rootfs.ensure_image(POSTGRES_ROOTFS, suite, mirror, paths.rootfs, docker)
    version, rev = engine_version(paths), revision(paths)
    out = image_refs(paths)

    site = site_packages(paths)
    components = sbom.python_components(site)
    dpkg_status = docker.read_file(runtime_base, "/var/lib/dpkg/status")
    components += sbom.debian_components(dpkg_status)
    sbom_file = paths.cache / "engine-site" / f"{site.name}.cdx.json"
    sbom_file.write_text(sbom.cyclonedx("engine-api", version, components))

    dockerfile = RUNTIME_DOCKERFILE.format(
        base=runtime_base,
        uid=ENGINE_UID,
        version=version,
        revision=rev,
        pruned_stdlib=" ".join(PRUNED_STDLIB),
        pruned_libs=" ".join(PRUNED_LIBS),
    )
    context = BuildContext(dockerfile)
    context.add("site-packages", site)
    context.add("sbom.cdx.json", sbom_file, 0o644)
    api_key = cache_key(dockerfile, site.name)
    _build(docker, out.api, context, api_key, out)

    worker_dockerfile = WORKER_DOCKERFILE.format(api=out.api)
    _build(
        docker,
        out.worker,
        BuildContext(worker_dockerfile),
        cache_key(worker_dockerfile, api_key),
        out,
    )

    entrypoint = paths.repo / "engine" / "postgres" / "pg-entrypoint"
    pg_dockerfile = POSTGRES_DOCKERFILE.format(
        base=postgres_base, uid=POSTGRES_UID, version=version
    )
    pg_context = BuildContext(pg_dockerfile)
    pg_context.add("pg-entrypoint", entrypoint, 0o755)
    _build(docker, out.postgres, pg_context, postgres_key(paths), out)
    # One tag per commit would pile up on a nightly machine: keep only the current build.
    for current in (out.worker, out.api, out.postgres):
        for old in docker.remove_other_tags(current):
            log.info("   removed old image %s", old)
    return out
