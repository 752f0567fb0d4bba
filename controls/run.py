"""Run the negative controls of controls/negative.toml: each must make its scenario fail.

Every control works on a scratch worktree of HEAD (the checkout is never touched),
applies its mutation, and runs the selected scenarios there on a fresh kind cluster of
its own name. Its verdict comes from the junit report: ``detected`` when a selected
scenario failed in its own checks; ``MISSED`` when they all passed; ``broken`` when
nothing ran or setup errored (a control that proves nothing either way).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTROLS = ROOT / "controls" / "negative.toml"
CONTROLS_FILE = CONTROLS.relative_to(ROOT)
FAILED_STEP = "failed_step"  # the JUnit property steps/support/report.py writes
CLUSTER = "ce-negative"


@dataclass(frozen=True)
class Control:
    name: str
    protects: str
    what: str
    edits: tuple[tuple[str, str, str], ...]  # (file, old, new)
    select: str


def load(path: Path = CONTROLS) -> list[Control]:
    controls = []
    for entry in tomllib.loads(path.read_text())["control"]:
        edits = [(entry["file"], entry["old"], entry["new"])]
        edits += [tuple(also) for also in entry.get("also", [])]
        controls.append(
            Control(entry["name"], entry["protects"], entry["what"], tuple(edits), entry["select"])
        )
    return controls


def mutate(tree: Path, control: Control) -> None:
    """Apply the control's edits; a stale one (its text gone) is an error, never a pass."""
    for file, old, new in control.edits:
        path = tree / file
        text = path.read_text()
        if old not in text:
            raise SystemExit(f"control {control.name}: {file} no longer holds {old!r}")
        path.write_text(text.replace(old, new))
    consume(tree / CONTROLS_FILE, control.name)


def consume(controls: Path, name: str) -> None:
    """Take the applied control out of the scratch tree's list. The tree's own unit tests
    check that every listed control still finds its text, so the delivery pipeline,
    which runs them on the scratch commit, failed them and never built: the delivery
    scenarios then failed for that reason, not the control's."""
    blocks = re.split(r"(?m)^(?=\[\[control\]\]\n)", controls.read_text())
    kept = [b for b in blocks if not re.match(rf'\[\[control\]\]\nname = "{re.escape(name)}"\n', b)]
    if len(kept) != len(blocks) - 1:
        raise SystemExit(f"control {name}: not found once in {controls}")
    controls.write_text("".join(kept))


def verdict(junit: Path) -> tuple[str, list[str]]:
    """detected: a selected scenario failed in a When or Then step (its action or its
    check); broken: it failed in a Given (its setup: nothing was checked), errored or
    did not run; MISSED: it passed. Each failed scenario is named with its failed step."""
    if not junit.exists():
        return "broken", ["no junit report: the run did not start"]
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    failed = {
        c.get("name", ""): next(
            (p.get("value", "") for p in c.iter("property") if p.get("name") == FAILED_STEP),
            "",
        )
        for c in cases
        if c.find("failure") is not None
    }
    named = [f"{name} (failed at: {step})" if step else name for name, step in failed.items()]
    errored = [c.get("name", "") for c in cases if c.find("error") is not None]
    ran = [c for c in cases if c.find("skipped") is None]
    if failed and not all(step.startswith("given ") for step in failed.values()):
        return "detected", named
    if failed:
        return "broken", named
    if errored or not ran:
        return "broken", errored or ["no scenario ran"]
    return "MISSED", [c.get("name", "") for c in ran]


def run(control: Control, keep: bool) -> dict[str, object]:
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix=f"ce-control-{control.name}-"))
    tree = scratch / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), "HEAD"],
        check=True,
        capture_output=True,
    )
    try:
        mutate(tree, control)
        # Committed: the delivery pipeline runs commits, so a mutation it should see must be one.
        identity = {
            f"GIT_{who}_{part}": value
            for who in ("AUTHOR", "COMMITTER")
            for part, value in (("NAME", "negative-control"), ("EMAIL", "nc@ce.local"))
        }
        subprocess.run(
            ["git", "-C", str(tree), "commit", "--quiet", "--all", "--no-verify", "-m",
             f"negative control {control.name}"],
            check=True,
            capture_output=True,
            env={**os.environ, **identity},
        )  # fmt: skip
        junit = scratch / "junit.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "steps",
            "-k",
            control.select,
            "-p",
            "no:cacheprovider",
            "--timeout=1800",
            f"--cluster-name={CLUSTER}",
            f"--junitxml={junit}",
            "-o",
            "log_cli=true",
            "--log-cli-level=INFO",
        ]
        print(f"==> control {control.name} ({control.protects}): {control.what}", flush=True)
        code = subprocess.run(command, cwd=tree, check=False).returncode
        result, scenarios = verdict(junit)
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
            check=False,
            capture_output=True,
        )
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return {
        "control": control.name,
        "protects": control.protects,
        "what": control.what,
        "verdict": result,
        "scenarios": scenarios,
        "pytest_exit": code,
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="run this control (repeat)")
    parser.add_argument("--keep", action="store_true", help="keep each scratch folder")
    options = parser.parse_args(argv)
    controls = [c for c in load() if not options.only or c.name in options.only]
    unknown = set(options.only) - {c.name for c in load()}
    if unknown:
        parser.error(f"unknown control(s): {sorted(unknown)}")
    results = [run(control, options.keep) for control in controls]
    out = (
        ROOT
        / "reports"
        / f"negative-controls-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    )
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    for result in results:
        print(
            f"{result['verdict']:>9}  {result['control']} ({result['protects']}): {result['what']}"
        )
    print(f"written to {out}")
    return 0 if all(r["verdict"] == "detected" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
