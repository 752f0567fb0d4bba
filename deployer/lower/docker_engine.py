"""Start (or reuse) a Docker engine that can run kind's privileged nodes.

This sandbox's capability bounding set lacks CAP_SYS_RESOURCE, so runc's
``--privileged`` containers fail with "unable to apply caps". Our engine uses
runc-capfilter (infra/kind/components/runc-capfilter) as its default runtime;
it removes capabilities the host cannot grant and then runs Debian's runc.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
from pathlib import Path

from deployer.errors import PrerequisiteError
from deployer.lower.debian import ensure_commands
from deployer.lower.waiting import WaitTimeout, wait_until

log = logging.getLogger(__name__)

DEFAULT_SOCKET = Path("/var/run/docker.sock")
ENGINE_START_TIMEOUT = 60.0
SYSCTLS = {"fs/inotify/max_user_instances": 512, "fs/inotify/max_user_watches": 524288}


def socket_answers(path: Path) -> bool:
    """True when something accepts connections on the Docker socket."""
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def raise_sysctls() -> None:
    """kind's multi-node clusters exhaust the default inotify limits."""
    for key, wanted in SYSCTLS.items():
        path = Path("/proc/sys") / key
        current = int(path.read_text().split()[0])
        if current >= wanted:
            continue
        try:
            path.write_text(str(wanted))
            log.info("   raised %s from %d to %d", key.replace("/", "."), current, wanted)
        except OSError as error:
            raise PrerequisiteError(
                f"{key.replace('/', '.')} is {current}, kind needs {wanted} and it cannot be "
                f"raised here ({error}); run as root or set it with sysctl"
            ) from None


def start_engine(state_dir: Path, capfilter: Path) -> None:
    """Start dockerd on the default socket with runc-capfilter as default runtime."""
    ensure_commands({"dockerd": "docker.io", "docker": "docker.io"})
    state_dir.mkdir(parents=True, exist_ok=True)
    runtime = state_dir / "runc-capfilter"
    if not runtime.exists() or runtime.read_bytes() != capfilter.read_bytes():
        shutil.copy2(capfilter, runtime)
        runtime.chmod(0o755)
    config = state_dir / "daemon.json"
    config.write_text(
        json.dumps(
            {
                "runtimes": {"capfilter": {"path": str(runtime)}},
                "default-runtime": "capfilter",
                "storage-driver": "overlay2",
            },
            indent=2,
        )
    )
    log_path = state_dir / "dockerd.log"
    log.info("   starting dockerd (log: %s)", log_path)
    # ``setsid --fork`` detaches dockerd into its own session and returns at once, so
    # the engine outlives this process and no Popen object is left to reap it.
    with log_path.open("ab") as log_file:
        subprocess.run(  # noqa: S603 - fixed argv
            ["setsid", "--fork", "dockerd", "--config-file", str(config)],  # noqa: S607
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=True,
        )
    try:
        wait_until(
            lambda: socket_answers(DEFAULT_SOCKET),
            timeout=ENGINE_START_TIMEOUT,
            interval=0.5,
            describe=f"dockerd to answer on {DEFAULT_SOCKET}",
        )
    except WaitTimeout as timeout:
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        raise PrerequisiteError(f"{timeout}:\n" + "\n".join(tail)) from None
