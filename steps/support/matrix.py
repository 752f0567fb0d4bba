"""The traceability matrix: each criterion, in the user's words, and the scenarios that
prove it, with their tags and the environments they deploy. Printed by ``--list``."""

from __future__ import annotations

from pathlib import Path

import pytest

from steps.support.approval import load_criteria
from steps.support.report import REQUIREMENT_MARK, scenario_title

ENVIRONMENT_MARK = "env_"  # env_dev, env_staging, env_production: -m env_staging


def lines(items: list[pytest.Item], criteria_file: Path) -> list[str]:
    out: list[str] = []
    for group in load_criteria(criteria_file):
        out.append(f"{group['id']} {group['persona']}: {group['goal']}")
        for criterion in group["criterion"]:
            out.append(f"  {criterion['id']}  when {criterion['when']}, then {criterion['then']}")
            proving = [i for i in items if i.get_closest_marker(criterion["id"])]
            if not proving:
                out.append("        (no scenario selected)")
            for item in proving:
                tags = sorted(
                    m.name
                    for m in item.iter_markers()
                    if not REQUIREMENT_MARK.match(m.name)
                    and not m.name.startswith(ENVIRONMENT_MARK)
                    and m.name not in ("skip", "usefixtures", "parametrize")
                    and not m.name.startswith("R")
                )
                environments = sorted(
                    m.name.removeprefix(ENVIRONMENT_MARK)
                    for m in item.iter_markers()
                    if m.name.startswith(ENVIRONMENT_MARK)
                )
                where = f"  [{', '.join(environments)}]" if environments else ""
                out.append(f"        {scenario_title(item)}  @{' @'.join(tags)}{where}")
    return out
