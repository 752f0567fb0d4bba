"""Install missing host tools from Debian's packages (the only package source here)."""

from __future__ import annotations

import logging
import os
import shutil

from deployer.errors import PrerequisiteError
from deployer.lower import proc

log = logging.getLogger(__name__)


def ensure_commands(commands: dict[str, str]) -> None:
    """Make sure each command exists, installing its Debian package (root only).

    ``commands`` maps a command name to the package that provides it.
    """
    missing = {
        command: package for command, package in commands.items() if not shutil.which(command)
    }
    if not missing:
        return
    packages = sorted(set(missing.values()))
    if os.geteuid() != 0:
        raise PrerequisiteError(
            f"missing {', '.join(missing)}; install with: sudo apt-get install {' '.join(packages)}"
        )
    log.info("   installing Debian packages: %s", " ".join(packages))
    proc.run(["apt-get", "update", "-q"], timeout=600, describe="apt-get update")
    proc.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        env={"DEBIAN_FRONTEND": "noninteractive"},
        timeout=900,
        describe="apt-get install",
    )
