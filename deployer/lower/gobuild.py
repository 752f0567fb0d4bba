"""Build Go programs from pinned modules into a cache keyed by their inputs."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from deployer.errors import PrerequisiteError
from deployer.lower import proc
from deployer.lower.cache import cache_key

log = logging.getLogger(__name__)

GO_BUILD_TIMEOUT = 45 * 60


@dataclass(frozen=True)
class GoProgram:
    """One ``go build`` in one module folder, producing named binaries."""

    name: str
    module_dir: Path
    packages: tuple[tuple[str, str], ...]  # (binary name, import path)
    ldflags: str = "-s -w"
    tags: str = ""  # Go build tags, comma-separated
    # A module whose go.mod needs a newer Go than the machine's names the toolchain
    # release the go command fetches from the module proxy (GOTOOLCHAIN); "" = local.
    toolchain: str = ""

    def key(self, go_version: str) -> str:
        inputs = [
            p
            for p in self.module_dir.iterdir()
            if p.is_file() and p.suffix in {".mod", ".sum", ".go"}
        ]
        parts = [
            go_version,
            self.ldflags,
            self.tags,
            *([f"GOTOOLCHAIN={self.toolchain}"] if self.toolchain else []),
            repr(self.packages),
            "CGO_ENABLED=0",
            "linux/amd64",
        ]
        hasher_parts = parts + [f"{p.name}:{p.read_bytes().hex()}" for p in sorted(inputs)]
        return cache_key(*hasher_parts)


@dataclass(frozen=True)
class BuiltProgram:
    name: str
    directory: Path
    cached: bool

    def binary(self, name: str) -> Path:
        return self.directory / name


def go_version() -> str:
    if shutil.which("go") is None:
        raise PrerequisiteError(
            "the Go toolchain is not on PATH; install Go 1.24 or newer (this machine has one "
            "preinstalled under /usr/local/go/bin)"
        )
    return proc.run(["go", "env", "GOVERSION"], timeout=60).strip()


def build(program: GoProgram, out_root: Path, go: str) -> BuiltProgram:
    """Build ``program`` unless a complete build with the same key is cached."""
    key = program.key(go)
    target = out_root / program.name / key
    if (target / ".complete").exists():
        log.info("   %s: cached (%s)", program.name, key)
        return BuiltProgram(program.name, target, cached=True)
    log.info("   %s: building %s", program.name, ", ".join(n for n, _ in program.packages))
    staging = out_root / program.name / f".{key}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    env = {
        "CGO_ENABLED": "0",
        "GOOS": "linux",
        "GOARCH": "amd64",
        "GOFLAGS": "-mod=readonly",
        "GOTOOLCHAIN": program.toolchain or "local",
    }
    for binary, package in program.packages:
        proc.run(
            [
                "go",
                "build",
                "-trimpath",
                *(["-tags", program.tags] if program.tags else []),
                "-ldflags",
                program.ldflags,
                "-o",
                staging / binary,
                package,
            ],
            cwd=program.module_dir,
            env={**env, "PATH": os.environ.get("PATH", "")},
            timeout=GO_BUILD_TIMEOUT,
            describe=f"go build {binary}",
        )
    (staging / ".complete").write_text(key)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return BuiltProgram(program.name, target, cached=False)
