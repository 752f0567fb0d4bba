"""Steps about the engine's images as deployed (R1.1): users, file systems, contents, size."""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import testinfra
from pytest_bdd import parsers, then

from deployer.lower.waiting import wait_until
from steps.support import image_scan
from steps.support.environments import Environment
from steps.support.healing import node_agent
from steps.support.kube import Kube
from steps.support.report import RecordFigure

INTERPRETER = "usr/bin/python3.11"  # the one interpreter the engine images need
POSTGRES_SHELLS = frozenset({"usr/bin/bash", "usr/bin/sh"})
SBOM_PATH = "usr/share/sbom/engine.cdx.json"
# The kube-state exporter and the alert receiver are Python (Debian's python3).
MONITORING_PYTHON = frozenset({"usr/bin/python3.11", "usr/bin/python3"})
MONITORING_NAMESPACE = "ce-monitoring"


def engine_pods(kube: Kube, environment: Environment) -> list[Any]:
    pods = kube.core.list_namespaced_pod(
        environment.namespace, label_selector="app.kubernetes.io/part-of=consciousness-engine"
    )
    return [p for p in pods.items if p.status.phase == "Running"]


def exported_filesystem(image: str, into: Path) -> Path:
    """The image's root file system, unpacked for testinfra's file module."""
    container = subprocess.run(
        # Never started: the command only lets an image without one (the monitoring
        # plane's: each pod names its binary) be created.
        ["docker", "create", image, "/none"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    try:
        archive = into / "fs.tar"
        subprocess.run(["docker", "export", "-o", str(archive), container], check=True, timeout=300)
        root = into / "root"
        root.mkdir()
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="fully_trusted")
        archive.unlink()
        return root
    finally:
        subprocess.run(
            ["docker", "rm", "-f", container], check=True, capture_output=True, timeout=60
        )


class ImageFilesystems:
    """Unpacked root file systems of images, exported once each per session."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.roots: dict[str, Path] = {}

    def __getitem__(self, image: str) -> Path:
        if image not in self.roots:
            folder = self.scratch / f"image-{len(self.roots)}"
            folder.mkdir()
            self.roots[image] = exported_filesystem(image, folder)
        return self.roots[image]


@pytest.fixture(scope="session")
def engine_filesystems() -> Iterator[ImageFilesystems]:
    with tempfile.TemporaryDirectory(prefix="ce-images-") as scratch:
        yield ImageFilesystems(Path(scratch))


@then("every engine container runs as a non-root user with a read-only root file system")
def _(kube: Kube, environment: Environment, namespace: str, toolbox_image: str) -> None:
    """Observed on the node: the container's first process's UID and its root mount's flags."""
    checked = 0
    for pod in engine_pods(kube, environment):
        if pod.metadata.deletion_timestamp is not None:
            continue  # on its way out (a rollout elsewhere): its replacement is checked
        agent = node_agent(kube, namespace, pod.spec.node_name, toolbox_image)
        for container in pod.spec.containers:
            name = f"{pod.metadata.name}/{container.name}"
            # The container's ID is read again on each try: a container restarted (a probe
            # on a loaded machine) between listing and looking has a new one.
            output, _ = wait_until(
                partial(first_process, kube, namespace, agent, pod, container.name),
                timeout=60,
                interval=2,
                describe=f"the first process of {name} on its node",
            )
            uid, options = output.split()
            assert uid != "0", f"{name} runs as root"
            assert options.split(",")[0] == "ro", f"{name} root file system is mounted {options}"
            checked += 1
    assert checked >= 3, f"expected api, worker and postgres containers, checked {checked}"


def first_process(kube: Kube, namespace: str, agent: str, pod: Any, container: str) -> str | None:
    """The UID and root mount options of the container's first process, seen from its
    node ("1000 ro,relatime"); None while the container has no running process."""
    live = kube.core.read_namespaced_pod(pod.metadata.name, pod.metadata.namespace)
    statuses = {s.name: s for s in live.status.container_statuses or []}
    status = statuses.get(container)
    if status is None or not status.container_id or status.state.running is None:
        return None
    container_id = status.container_id.split("://", 1)[1]
    script = (
        f'for p in /proc/[0-9]*; do grep -qs "{container_id}" "$p/cgroup" || continue; '
        'uid=$(awk "/^Uid:/{print \\$2}" "$p/status"); '
        'root=$(awk \'$5 == "/" {print $6}\' "$p/mountinfo" | tail -n 1); '
        'echo "$uid $root"; break; done'
    )
    code, output = kube.exec(namespace, agent, ["sh", "-c", script])
    return output.strip() if code == 0 and output.strip() else None


@then(
    "neither the engine-api nor the engine-worker image holds a shell, a package manager "
    "or a second interpreter"
)
def _(
    environment: Environment, engine_filesystems: ImageFilesystems, record_figure: RecordFigure
) -> None:
    """Every entry of each image is judged (support/image_scan.py), not a list of paths."""
    host = testinfra.get_host("local://")
    for image in (environment.images.api, environment.images.worker):
        root = engine_filesystems[image]
        assert host.file(str(root / INTERPRETER)).exists, f"{image} has no {INTERPRETER}"
        found = image_scan.scan(root, allowed=frozenset({INTERPRETER}))
        assert not found, f"{image} holds {[str(f) for f in found]}"


@then(
    "the engine-postgres image holds no package manager, no interpreter and no shell but "
    "the bash its entrypoint runs"
)
def _(environment: Environment, engine_filesystems: ImageFilesystems) -> None:
    """Its entrypoint (initdb on first start) is a bash script: bash, and sh pointing at
    it, are the one allowance; perl, apt, dpkg or a second shell fail."""
    root = engine_filesystems[environment.images.postgres]
    entrypoint = (root / "usr/local/bin/pg-entrypoint").read_text().splitlines()[0]
    assert entrypoint == "#!/bin/bash", f"the entrypoint runs {entrypoint}"
    found = image_scan.scan(root, allowed=POSTGRES_SHELLS)
    assert not found, f"{environment.images.postgres} holds {[str(f) for f in found]}"


@then(
    "the monitoring plane's image holds no shell and no package manager, and no interpreter "
    "but the Python its exporters run"
)
def _(kube: Kube, engine_filesystems: ImageFilesystems, record_figure: RecordFigure) -> None:
    """The image the plane's pods run (read from the pods), judged like the engine's."""
    pods = kube.core.list_namespaced_pod(MONITORING_NAMESPACE).items
    running = {c.image for pod in pods for c in pod.spec.containers if "monitoring" in c.image}
    if not running:
        pytest.skip("not applicable: the monitoring plane is not installed on this cluster")
    for image in sorted(running):
        root = engine_filesystems[image]
        found = image_scan.scan(root, allowed=MONITORING_PYTHON)
        assert not found, f"{image} holds {[str(f) for f in found]}"
        record_figure(f"image_bytes[{image.split('/')[-1]}]", image_bytes(image))


def image_bytes(image: str) -> int:
    """The size Docker reports for ``image`` (uncompressed, every layer)."""
    return int(
        subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Size}}", image],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    )


@then("every engine container declares CPU and memory requests and limits")
def _(kube: Kube, environment: Environment) -> None:
    for pod in engine_pods(kube, environment):
        for container in pod.spec.containers:
            resources = container.resources
            for kind in ("requests", "limits"):
                values = getattr(resources, kind) or {}
                assert {"cpu", "memory"} <= set(values), (
                    f"{pod.metadata.name}/{container.name} lacks {kind}: {values}"
                )


@then(parsers.parse("the {name} image is at most {megabytes:d} MB"))
def _(
    kube: Kube,
    environment: Environment,
    name: str,
    megabytes: int,
    record_figure: RecordFigure,
) -> None:
    """The size Docker reports for the image that runs (uncompressed, every layer)."""
    image = {
        "engine-api": environment.images.api,
        "engine-worker": environment.images.worker,
        "engine-postgres": environment.images.postgres,
    }[name]
    running = {c.image for pod in engine_pods(kube, environment) for c in pod.spec.containers}
    assert image in running, f"{image} is not what runs: {running}"
    size = image_bytes(image)
    record_figure(f"{name.replace('-', '_')}_image_bytes", size)
    assert size <= megabytes * 1_000_000, f"{name} image is {size / 1e6:.1f} MB"


@then("the content digest of every image that runs is recorded")
def _(kube: Kube, environment: Environment, record_figure: RecordFigure) -> None:
    """What really runs, as the nodes' container runtime identifies it (content digest)."""
    for ref, value in environment.images.image_bytes.items():
        record_figure(f"image_bytes[{ref.split('/')[-1]}]", value)
    recorded = 0
    for pod in engine_pods(kube, environment):
        for status in pod.status.container_statuses or []:
            digest = status.image_id.rsplit("@", 1)[-1]
            assert digest.startswith("sha256:"), f"{status.image} runs as {status.image_id}"
            record_figure(f"image_digest[{status.image.split('/')[-1]}]", digest)
            recorded += 1
    assert recorded >= 3, f"expected api, worker and postgres containers, found {recorded}"


@then("every engine image carries an SBOM")
def _(
    environment: Environment, engine_filesystems: ImageFilesystems, record_figure: RecordFigure
) -> None:
    for image in (environment.images.api, environment.images.worker):
        document = json.loads((engine_filesystems[image] / SBOM_PATH).read_text())
        assert document["bomFormat"] == "CycloneDX"
        names = {component["name"].lower() for component in document["components"]}
        assert {"starlette", "psycopg", "pyjwt", "libc6", "python3.11-minimal"} <= names, names
        record_figure("sbom_components", len(names))
