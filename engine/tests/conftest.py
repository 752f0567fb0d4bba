"""A real, throwaway Postgres for the engine's tests (Debian's server binaries)."""

from __future__ import annotations

import base64
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from deployer.lower.debian import ensure_commands

PG_USER = "postgres"
# The tests' field-encryption key (32 bytes, base64); deployed environments get their own.
DATA_KEY = base64.b64encode(bytes(range(32))).decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def as_postgres(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root; drop to the postgres user when we are root."""
    return ["runuser", "-u", PG_USER, "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    ensure_commands({"pg_ctlcluster": "postgresql"})
    bin_dir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
    workdir = Path(tempfile.mkdtemp(prefix="ce-engine-pg-"))
    data = workdir / "data"
    if os.geteuid() == 0:
        shutil.chown(workdir, PG_USER, PG_USER)
    subprocess.run(
        as_postgres(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "engine", "--auth=trust", "-E", "UTF8"]
        ),
        check=True,
        timeout=120,
        capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        as_postgres(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={workdir}",
                "-c",
                "fsync=off",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"postgresql://engine@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(url, connect_timeout=1):
                break
        except psycopg.OperationalError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.2)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """A fresh database per test, so tests never see each other's rows."""
    name = f"t{time.monotonic_ns()}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
