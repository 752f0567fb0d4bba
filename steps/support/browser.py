"""Open the live view (Prometheus' console engine.html) in headless Chromium, as a person would.

The page is reached through `kubectl port-forward` on 127.0.0.1 only; Chromium
(Debian's package, installed on first use) renders it, we keep a screenshot
for the report and the rendered DOM's text for the assertions.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from deployer.actions import cluster as cluster_actions
from deployer.lower import debian
from deployer.lower.prometheus import NAMESPACE
from deployer.lower.waiting import wait_until
from deployer.settings import Paths

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)")


@dataclass(frozen=True)
class Screenshot:
    png: Path
    text: str


class TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.parts.append(data.strip())


def page_text(html: str) -> str:
    parser = TextOnly()
    parser.feed(html)
    return "\n".join(parser.parts)


def render(url: str, png: Path, window: str = "1280,1000") -> Screenshot:
    """Load ``url`` in headless Chromium: a screenshot into ``png`` and the rendered text."""
    debian.ensure_commands({"chromium": "chromium"})
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ce-chromium-") as profile:
        common = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={window}"]
        dom = subprocess.run(
            ["chromium", *common, "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
        ).stdout
        subprocess.run(
            ["chromium", *common, f"--screenshot={png}", url],
            capture_output=True,
            timeout=90,
            check=True,
        )
    wait_until(png.exists, timeout=10, interval=0.5, describe="the screenshot file")
    return Screenshot(png, page_text(dom))


def screenshot_console(kubeconfig: Path, paths: Paths, out_dir: Path) -> Screenshot:
    _, kubectl = cluster_actions.built_tools(paths)
    forward = subprocess.Popen(
        [
            str(kubectl),
            "--kubeconfig",
            str(kubeconfig),
            "-n",
            NAMESPACE,
            "port-forward",
            "--address",
            "127.0.0.1",
            "svc/prometheus",
            ":9090",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()
        match = FORWARDING.search(line)
        assert match, f"kubectl port-forward said {line!r}"
        url = f"http://127.0.0.1:{match.group(1)}/consoles/engine.html"
        png = out_dir / f"live-view-{time.strftime('%Y%m%dT%H%M%S')}.png"
        return render(url, png)
    finally:
        forward.terminate()
        forward.wait(timeout=10)
        if forward.stdout is not None:
            forward.stdout.close()
