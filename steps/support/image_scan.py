"""What an unpacked image file system holds that lets someone run arbitrary commands.

A fixed list of paths misses a `pip` inside site-packages, a busybox, a shell in
/usr/local/bin or a second interpreter; this walks every entry instead and judges
each executable (or link) by its name, and Python's own package managers by module.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from pathlib import Path

SHELLS = frozenset(
    {"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox", "toybox"}
)
PACKAGE_MANAGERS = frozenset(
    {
        "apt",
        "apt-get",
        "aptitude",
        "dpkg",
        "rpm",
        "yum",
        "dnf",
        "microdnf",
        "apk",
        "pip",
        "easy_install",
        "conda",
        "npm",
        "gem",
    }
)
INTERPRETER = re.compile(r"^(python|perl|ruby|node|nodejs|lua|php|tclsh|wish|guile|gawk)[\d.]*$")
PIP = re.compile(r"^pip[\d.]*$")
MODULE_MANAGERS = frozenset({"pip", "ensurepip"})  # a module that installs packages


@dataclass(frozen=True)
class Finding:
    path: str
    kind: str  # shell | package manager | interpreter

    def __str__(self) -> str:
        return f"{self.path} ({self.kind})"


def kind_of(name: str) -> str | None:
    if name in SHELLS:
        return "shell"
    if name in PACKAGE_MANAGERS or PIP.match(name):
        return "package manager"
    if INTERPRETER.match(name):
        return "interpreter"
    return None


def scan(root: Path, allowed: frozenset[str] = frozenset()) -> list[Finding]:
    """Every shell, package manager or interpreter under ``root`` not in ``allowed``
    (paths relative to the root, e.g. ``usr/bin/python3.11``)."""
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if relative in allowed:
            continue
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            in_packages = path.parent.name in ("site-packages", "dist-packages")
            stdlib = re.fullmatch(r"python3\.\d+", path.parent.name) is not None
            if path.name in MODULE_MANAGERS and (in_packages or stdlib):
                found.append(Finding(relative, "package manager"))
            continue
        executable = stat.S_ISLNK(mode) or bool(mode & 0o111)
        kind = kind_of(path.name) if executable else None
        if kind is not None:
            found.append(Finding(relative, kind))
    return found
