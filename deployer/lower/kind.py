"""kind's command line (built from sigs.k8s.io/kind, pinned in its go.mod)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from deployer.lower import proc

log = logging.getLogger(__name__)

CREATE_TIMEOUT = 15 * 60


@dataclass(frozen=True)
class Kind:
    binary: Path

    def clusters(self) -> list[str]:
        output = proc.run(
            [self.binary, "get", "clusters", "-q"], timeout=60, describe="kind get clusters"
        )
        return [
            line.strip() for line in output.splitlines() if line.strip() and " " not in line.strip()
        ]

    def create(self, name: str, image: str, config: Path, kubeconfig: Path, retain: bool) -> None:
        command: list[str | Path] = [
            self.binary,
            "create",
            "cluster",
            "--name",
            name,
            "--image",
            image,
            "--config",
            config,
            "--kubeconfig",
            kubeconfig,
            "--wait",
            "0s",
        ]
        if retain:
            command.append("--retain")
        proc.run(command, timeout=CREATE_TIMEOUT, describe="kind create cluster")

    def delete(self, name: str, kubeconfig: Path | None = None) -> None:
        command: list[str | Path] = [self.binary, "delete", "cluster", "--name", name]
        if kubeconfig is not None:
            command += ["--kubeconfig", kubeconfig]
        proc.run(command, timeout=300, describe="kind delete cluster")

    def export_logs(self, name: str, destination: Path) -> None:
        proc.run(
            [self.binary, "export", "logs", destination, "--name", name],
            timeout=600,
            describe="kind export logs",
        )

    def nodes(self, name: str) -> list[str]:
        output = proc.run([self.binary, "get", "nodes", "--name", name], timeout=60)
        return sorted(output.split())

    def load_images(self, name: str, images: list[str], nodes: list[str] | None = None) -> None:
        """Load images in one go: one `docker save` holds the layers they share once."""
        command: list[str | Path] = [self.binary, "load", "docker-image", *images, "--name", name]
        if nodes:
            command += ["--nodes", ",".join(nodes)]
        proc.run(command, timeout=900, describe=f"kind load {' '.join(images)}")
