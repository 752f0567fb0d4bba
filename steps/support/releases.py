"""Engine releases built for real from a patched copy of its code: the bad releases
R2.5 ships and the next release R1.4 rolls out and back.

Each is a change a release could plausibly ship, not a fault switch in the product:
the engine's own code, changed in a few places, built into images like any release.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deployer.actions import engine_images
from deployer.actions.deploy import Target
from deployer.actions.engine_images import EngineImages
from deployer.actions.registry import publish
from deployer.lower.cache import cache_key
from deployer.lower.docker_client import DockerClient
from deployer.settings import Paths

API = "engine/src/ce_engine/api.py"
SCHEMA = "engine/src/ce_engine/schema.sql"


@dataclass(frozen=True)
class Change:
    """``old`` replaced by ``new`` in one file of the repository (``old`` must be there once)."""

    path: str
    old: str
    new: str


@dataclass(frozen=True)
class Release:
    """Changes to the engine's code, and what they do to the running release."""

    name: str
    slug: str
    changes: tuple[Change, ...]
    effect: str
    kind: str = "bad"  # the tag's word: <version>-<kind>-<slug>-<hash of the code>


BAD_RELEASES = {
    release.name: release
    for release in (
        Release(
            "pods never Ready",
            "never-ready",
            (
                Change(
                    API,
                    'await connection.execute("SELECT 1")',
                    'await connection.execute("SELECT 1 FROM release_markers LIMIT 1")',
                ),
            ),
            "readiness asks for a table this release's migration never creates",
        ),
        Release(
            "crash-looping",
            "crash-loop",
            (
                Change(
                    API,
                    'def main() -> None:\n    settings = load_or_exit("engine-api")\n',
                    'def main() -> None:\n    settings = load_or_exit("engine-api")\n'
                    '    open("/etc/engine/feature-flags.json").close()\n',
                ),
            ),
            "the server reads a file no environment mounts and exits at start",
        ),
        Release(
            "5xx on one route",
            "5xx-route",
            (
                Change(
                    API,
                    '"SELECT id, title, created_by, created_at FROM sessions ORDER BY id DESC '
                    'LIMIT 100"',
                    '"SELECT id, title, created_by, created_at, archived_at FROM sessions '
                    'ORDER BY id DESC LIMIT 100"',
                ),
            ),
            "listing sessions asks for a column that does not exist: 500 on that route only",
        ),
    )
}

# The column the next release adds, and the migration that adds it: an "expand" step
# (nullable, so the release before it, which does not write it, keeps inserting).
NEW_COLUMN = "request_id"
EXPAND = "ALTER TABLE sessions ADD COLUMN request_id TEXT;"

NEXT_RELEASE = Release(
    "sessions remember their request",
    "session-request-id",
    (
        Change(
            SCHEMA,
            "END\n$$;",
            "    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND table_name = 'sessions' AND column_name = 'request_id') THEN\n"
            f"        {EXPAND}\n"
            "    END IF;\nEND\n$$;",
        ),
        Change(
            API,
            '"INSERT INTO sessions (title, created_by) VALUES (%s, %s) "\n'
            '        "RETURNING id, title, created_by, created_at",\n'
            '        (cipher(request).encrypt("title", document["title"]), who.subject),',
            '"INSERT INTO sessions (title, created_by, request_id) VALUES (%s, %s, %s) "\n'
            '        "RETURNING id, title, created_by, created_at, request_id",\n'
            '        (cipher(request).encrypt("title", document["title"]), who.subject,'
            " logs.request_id.get()),",
        ),
        Change(
            API,
            '"SELECT id, title, created_by, created_at FROM sessions WHERE id = %s",',
            '"SELECT id, title, created_by, created_at, request_id FROM sessions WHERE id = %s",',
        ),
    ),
    "a session keeps the ID of the request that created it: a new column (expand migration)",
    kind="next",
)


def build(paths: Paths, docker: DockerClient, release: Release) -> EngineImages:
    """The engine's images from a copy of engine/ with ``release``'s changes, tagged
    <version>-<kind>-<slug>-<hash of the changed code>: the same code is the same tag in
    every run (cached, built once), new code is a new tag."""
    with tempfile.TemporaryDirectory(prefix=f"ce-{release.kind}-{release.slug}-") as folder:
        copy = Path(folder)
        ignore = shutil.ignore_patterns("__pycache__", "tests", "*.pyc")
        shutil.copytree(paths.repo / "engine", copy / "engine", ignore=ignore)
        (copy / "infra").symlink_to(paths.repo / "infra")  # pins, read only
        for change in release.changes:
            source = copy / change.path
            text = source.read_text()
            if text.count(change.old) != 1:
                raise AssertionError(
                    f"{change.path} no longer contains, once, the text the {release.name!r} "
                    f"release changes ({change.old!r}); update steps/support/releases.py"
                )
            source.write_text(text.replace(change.old, change.new))
        content = cache_key(trees=[copy / "engine"])[:10]
        rev = f"{release.kind}-{release.slug}-{content}"
        copied = Paths(repo=copy, cache=paths.cache)
        return engine_images.build_engine_images(copied, docker, rev=rev)


def build_and_load(paths: Paths, docker: DockerClient, target: Target, name: str) -> EngineImages:
    """Build one bad release and put its engine-api image where the nodes get it (the
    release keeps the worker and database images that serve)."""
    images = build(paths, docker, BAD_RELEASES[name])
    if target.registry:
        return dataclasses.replace(
            images, api=publish(docker, [images.api], target.registry)[images.api]
        )
    if target.kind is not None and target.kind_cluster is not None:
        workers = [n for n in target.kind.nodes(target.kind_cluster) if "control-plane" not in n]
        target.kind.load_images(target.kind_cluster, [images.api], workers)
    return images
