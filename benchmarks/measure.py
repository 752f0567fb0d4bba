"""Measure build, cluster and acceptance times on this machine; write benchmarks/results.json.

    python benchmarks/measure.py            # warm build, cluster up/down, acceptance run
    python benchmarks/measure.py --cold     # first wipe every build cache (slow: ~20-40 min)
    python benchmarks/measure.py --compare-lanes SERIAL_RUN LANES_RUN   # two report folders

Each figure is a wall-clock time taken around one command; budgets come from
benchmarks/budgets.toml and are reported next to the figures, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, env={**os.environ, **(env or {})}, check=True, timeout=5400)
    return round(time.monotonic() - started, 1)


def wipe_caches() -> None:
    """Remove every build output the deployer caches, and the images it built."""
    cache = Path(os.environ.get("CE_CACHE_DIR", Path.home() / ".cache" / "consciousness-engine"))
    for folder in ("go-bin", "rootfs", "images"):
        shutil.rmtree(cache / folder, ignore_errors=True)
    go_cache = subprocess.run(["go", "env", "GOCACHE"], capture_output=True, text=True, check=True)
    shutil.rmtree(go_cache.stdout.strip(), ignore_errors=True)
    images = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    ours = [i for i in images if i.startswith(("ce.local/", "registry.k8s.io/"))]
    if ours:
        subprocess.run(["docker", "rmi", "-f", *ours], check=True, capture_output=True)


def image_sizes() -> dict[str, int]:
    lines = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    sizes = {}
    for line in lines:
        ref, image_id = line.split()
        if ref.startswith(("ce.local/", "registry.k8s.io/")) and "rootfs-" not in ref:
            inspect = subprocess.run(
                ["docker", "image", "inspect", image_id, "--format", "{{.Size}}"],
                capture_output=True,
                text=True,
                check=True,
            )
            sizes[ref] = int(inspect.stdout.strip())
    return sizes


def scenario_figures() -> dict[str, Any]:
    """What each requirement's scenarios measured in the acceptance run just made."""
    report = json.loads((ROOT / "reports" / "latest" / "requirements.json").read_text())
    return {
        requirement: entry["figures"]
        for requirement, entry in report["requirements"].items()
        if entry.get("figures")
    }


def lanes_comparison(serial_run: Path, lanes_run: Path) -> dict[str, Any]:
    """The wall time of one acceptance run serial and one with two lanes (``-n 2``), from
    their report folders: what the second lane gains on this machine, scenario by lane."""

    def run(folder: Path) -> dict[str, Any]:
        report = json.loads((folder / "requirements.json").read_text())
        scenarios = [s for e in report["requirements"].values() for s in e["scenarios"]]
        scenarios += report["other_scenarios"]
        unique = {s["nodeid"]: s for s in scenarios}.values()
        return {
            "report": folder.name,
            # the short form: a full commit hash reads as a secret to the repository's scan
            "revision": json.loads((folder / "MANIFEST.json").read_text())["facts"]["revision"][:7],
            "run_s": report["duration_s"],
            "passed": sum(1 for s in unique if s["status"] == "passed"),
            "scenarios": len(unique),
            "host_busy_pct": report["host_cpu_during_scenarios"].get("host_busy_pct"),
        }

    serial, lanes = run(serial_run), run(lanes_run)
    return {
        "serial": serial,
        "two_lanes": lanes,
        "gain_s": round(serial["run_s"] - lanes["run_s"], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cold", action="store_true", help="wipe build caches first")
    parser.add_argument("--skip-acceptance", action="store_true")
    parser.add_argument(
        "--compare-lanes",
        nargs=2,
        type=Path,
        metavar=("SERIAL_RUN", "LANES_RUN"),
        help="record the two-lane gain from two report folders in results.json; nothing else",
    )
    args = parser.parse_args()
    out = ROOT / "benchmarks" / "results.json"
    if args.compare_lanes:
        recorded = json.loads(out.read_text()) if out.exists() else {}
        recorded["lanes"] = {
            "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
            **lanes_comparison(*args.compare_lanes),
        }
        out.write_text(json.dumps(recorded, indent=2) + "\n")
        print(json.dumps(recorded["lanes"], indent=2))
        return 0
    figures: dict[str, Any] = {}
    deployer = [PYTHON, "-m", "deployer"]
    if args.cold:
        wipe_caches()
        figures["cold_build_s"] = timed([*deployer, "build"])
    figures["warm_build_s"] = timed([*deployer, "build"])
    figures["cluster_up_3_nodes_s"] = timed([*deployer, "cluster", "up", "--name", "ce-bench"])
    figures["cluster_down_s"] = timed([*deployer, "cluster", "down", "--name", "ce-bench"])
    if not args.skip_acceptance:
        figures["acceptance_run_s"] = timed(
            [PYTHON, "-m", "pytest", "steps", "--acceptance-report", "-p", "no:cacheprovider", "-q"]
        )
        figures["scenario_figures"] = scenario_figures()
    figures["image_bytes"] = image_sizes()
    budgets = tomllib.loads((ROOT / "benchmarks" / "budgets.toml").read_text())
    result = {
        "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "figures": figures,
        "budgets": budgets,
    }
    if out.exists() and "lanes" in json.loads(out.read_text()):
        result["lanes"] = json.loads(out.read_text())["lanes"]
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
