"""The Gherkin covers all 25 criteria and every tag is a registered marker."""

import re
import tomllib
from pathlib import Path

from steps.support.report import REQUIREMENT_IDS

ROOT = Path(__file__).resolve().parent.parent
TAG = re.compile(r"@([\w.]+)")


def feature_tags() -> dict[Path, set[str]]:
    return {path: set(TAG.findall(path.read_text())) for path in ROOT.glob("features/**/*.feature")}


def test_every_criterion_has_a_scenario() -> None:
    tagged = set().union(*feature_tags().values())
    assert [rid for rid in REQUIREMENT_IDS if rid not in tagged] == []


def test_every_tag_is_a_registered_marker() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    registered = {line.split(":")[0] for line in config["tool"]["pytest"]["ini_options"]["markers"]}
    used = set().union(*feature_tags().values())
    assert used - registered == set()


def test_every_scenario_names_its_criterion_or_is_smoke() -> None:
    for path in ROOT.glob("features/**/*.feature"):
        text = path.read_text()
        if "@smoke" in text.split("Feature:")[0]:
            continue
        blocks = re.split(r"\n\s*Scenario:", text)[1:]
        previous_tags = re.findall(r"((?:@[\w.]+\s*)+)\n\s*Scenario:", text)
        assert len(previous_tags) == len(blocks), f"untagged scenario in {path}"
        for tags in previous_tags:
            assert re.search(r"@R[1-5]\.[1-5]\b", tags), (
                f"{path}: scenario without criterion: {tags}"
            )


def test_a_scenario_that_breaks_something_runs_alone() -> None:
    """With two lanes (-n 2), a scenario that kills, restarts or rolls something out must
    have the cluster to itself: @resilience ones are @alone (or @delivery, which runs last
    and alone)."""
    for path in ROOT.glob("features/**/*.feature"):
        for tags in re.findall(r"((?:@[\w.]+\s*)+)\n\s*Scenario:", path.read_text()):
            if "@resilience" in tags:
                assert "@alone" in tags or "@delivery" in tags, f"{path}: {tags.strip()}"
