"""A CycloneDX 1.5 SBOM for an image: its Python distributions and its Debian packages."""

from __future__ import annotations

import json
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any


def python_components(site_packages: Path) -> list[dict[str, Any]]:
    components = []
    for dist in metadata.distributions(path=[str(site_packages)]):
        name, version = dist.metadata["Name"], dist.version
        components.append(
            {
                "type": "library",
                "name": name,
                "version": version,
                "purl": f"pkg:pypi/{name.lower()}@{version}",
            }
        )
    return sorted(components, key=lambda c: c["name"].lower())


def debian_components(dpkg_status: str) -> list[dict[str, Any]]:
    components = []
    for stanza in dpkg_status.split("\n\n"):
        fields = dict(
            line.split(": ", 1)
            for line in stanza.splitlines()
            if ": " in line and not line[0].isspace()
        )
        if "Package" in fields and "install ok installed" in fields.get("Status", ""):
            name, version = fields["Package"], fields.get("Version", "")
            arch = fields.get("Architecture", "amd64")
            components.append(
                {
                    "type": "library",
                    "name": name,
                    "version": version,
                    "purl": f"pkg:deb/debian/{name}@{version}?arch={arch}",
                }
            )
    return sorted(components, key=lambda c: c["name"])


def cyclonedx(image: str, version: str, components: list[dict[str, Any]]) -> str:
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, image + version)}",
        "version": 1,
        "metadata": {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "component": {"type": "container", "name": image, "version": version},
            "tools": {
                "components": [{"type": "application", "name": "consciousness-engine deployer"}]
            },
        },
        "components": components,
    }
    return json.dumps(document, indent=1, sort_keys=True)
