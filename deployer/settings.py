"""Where things live and which versions are pinned, read once from the repo."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from deployer.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_cache_dir() -> Path:
    """Build caches live outside the checkout so a fresh clone starts warm."""
    override = os.environ.get("CE_CACHE_DIR")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "consciousness-engine"


@dataclass(frozen=True)
class Paths:
    """The project's input folders and the cache folder for build outputs."""

    repo: Path
    cache: Path

    @property
    def components(self) -> Path:
        return self.repo / "infra" / "kind" / "components"

    @property
    def node_image_files(self) -> Path:
        return self.repo / "infra" / "kind" / "node-image" / "files"

    @property
    def addons(self) -> Path:
        return self.repo / "infra" / "kind" / "addons"

    @property
    def versions_file(self) -> Path:
        return self.repo / "infra" / "versions.toml"

    @property
    def go_bin(self) -> Path:
        return self.cache / "go-bin"

    @property
    def rootfs(self) -> Path:
        return self.cache / "rootfs"

    @property
    def logs(self) -> Path:
        return self.cache / "logs"

    @property
    def docker_state(self) -> Path:
        return self.cache / "docker"

    @property
    def clusters(self) -> Path:
        return self.cache / "clusters"

    @property
    def pipeline_tools(self) -> Path:
        """Go modules of the delivery pipeline's tools (act, actionlint)."""
        return self.repo / "infra" / "pipeline"

    @property
    def pipeline_home(self) -> Path:
        """This machine's git remote, runner workspace and run records."""
        return self.cache / "pipeline"


@dataclass(frozen=True)
class DebianPins:
    suite: str
    mirror: str


@dataclass(frozen=True)
class Versions:
    """Pins that are not Go modules (those are pinned by go.mod/go.sum)."""

    debian: DebianPins
    pause_tag: str
    kubernetes: str


def go_module_version(go_mod: Path, module: str) -> str:
    """Version of ``module`` required by ``go_mod``: go.mod is the single pin."""
    pattern = re.compile(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", re.MULTILINE)
    match = pattern.search(go_mod.read_text())
    if not match:
        raise ConfigError(f"{go_mod} does not require {module}; fix the pin there")
    return match.group(1)


def load_versions(paths: Paths) -> Versions:
    data = tomllib.loads(paths.versions_file.read_text())
    try:
        debian = DebianPins(suite=data["debian"]["suite"], mirror=data["debian"]["mirror"])
        pause_tag = data["images"]["pause"]
    except KeyError as missing:
        raise ConfigError(f"{paths.versions_file} lacks {missing}") from None
    kubernetes = go_module_version(paths.components / "kubernetes" / "go.mod", "k8s.io/kubernetes")
    return Versions(debian=debian, pause_tag=pause_tag, kubernetes=kubernetes)


def default_paths() -> Paths:
    return Paths(repo=REPO_ROOT, cache=default_cache_dir())
