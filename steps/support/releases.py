"""Bad releases of the engine, built for real from a patched copy of its code.

Each is a bug a release could plausibly ship, not a fault switch in the product:
the engine's own code, changed in one place, built into images like any release.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deployer.actions import engine_images
from deployer.actions.deploy import Target
from deployer.actions.engine_images import EngineImages
from deployer.lower.cache import cache_key
from deployer.lower.docker_client import DockerClient
from deployer.settings import Paths

API = "engine/src/ce_engine/api.py"


@dataclass(frozen=True)
class BadRelease:
    """One change to one file of the engine, and what it does to the running release."""

    name: str
    slug: str
    path: str
    old: str
    new: str
    effect: str


BAD_RELEASES = {
    release.name: release
    for release in (
        BadRelease(
            "pods never Ready",
            "never-ready",
            API,
            'await connection.execute("SELECT 1")',
            'await connection.execute("SELECT 1 FROM release_markers LIMIT 1")',
            "readiness asks for a table this release's migration never creates",
        ),
        BadRelease(
            "crash-looping",
            "crash-loop",
            API,
            'def main() -> None:\n    settings = load_or_exit("engine-api")\n',
            'def main() -> None:\n    settings = load_or_exit("engine-api")\n'
            '    open("/etc/engine/feature-flags.json").close()\n',
            "the server reads a file no environment mounts and exits at start",
        ),
        BadRelease(
            "5xx on one route",
            "5xx-route",
            API,
            '"SELECT id, title, created_by, created_at FROM sessions ORDER BY id DESC LIMIT 100"',
            '"SELECT id, title, created_by, created_at, archived_at FROM sessions '
            'ORDER BY id DESC LIMIT 100"',
            "listing sessions asks for a column that does not exist: 500 on that route only",
        ),
    )
}


def build(paths: Paths, docker: DockerClient, release: BadRelease) -> EngineImages:
    """The engine's images from a copy of engine/ with ``release``'s change, tagged
    <version>-bad-<slug>-<hash of the changed code>: the same code is the same tag in
    every run (cached, built once), new code is a new tag."""
    with tempfile.TemporaryDirectory(prefix=f"ce-bad-{release.slug}-") as folder:
        copy = Path(folder)
        ignore = shutil.ignore_patterns("__pycache__", "tests", "*.pyc")
        shutil.copytree(paths.repo / "engine", copy / "engine", ignore=ignore)
        (copy / "infra").symlink_to(paths.repo / "infra")  # pins, read only
        source = copy / release.path
        text = source.read_text()
        if text.count(release.old) != 1:
            raise AssertionError(
                f"{release.path} no longer contains the line the {release.name!r} release "
                f"changes ({release.old!r}); update steps/support/releases.py"
            )
        source.write_text(text.replace(release.old, release.new))
        content = cache_key(trees=[copy / "engine"])[:10]
        return engine_images.build_engine_images(
            Paths(repo=copy, cache=paths.cache), docker, rev=f"bad-{release.slug}-{content}"
        )


def build_and_load(paths: Paths, docker: DockerClient, target: Target, name: str) -> EngineImages:
    """Build one bad release and put its engine-api image on the workers (the release
    keeps the worker and database images that serve)."""
    images = build(paths, docker, BAD_RELEASES[name])
    if target.kind is not None and target.kind_cluster is not None:
        workers = [n for n in target.kind.nodes(target.kind_cluster) if "control-plane" not in n]
        target.kind.load_images(target.kind_cluster, [images.api], workers)
    return images
