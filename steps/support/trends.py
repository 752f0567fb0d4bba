"""Trends across acceptance runs: each criterion's status and each figure, run after run.

Reads reports/<stamp>/requirements.json of the newest runs, writes
reports/trends.html and reports/trends.json, and flags what got worse since the
previous run: a criterion that passed and no longer does, a figure that went
over its budget. ``--keep N`` deletes all but the newest N runs (and their
archives): nightly history is bounded.

    python -m steps.support.trends [--reports reports] [--runs 14] [--keep 30]
"""

from __future__ import annotations

import argparse
import html
import json
import shutil
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steps.support.approval import COLOURS, STATUS_WORDS, budget_for, shown_status

STAMP_LENGTH = len("20261126T000000Z")


@dataclass
class Run:
    stamp: str
    document: dict[str, Any]

    @property
    def statuses(self) -> dict[str, str]:
        """Each criterion's status; a pass that left parts out is "passed_in_part"."""
        return {k: shown_status(v) for k, v in self.document.get("requirements", {}).items()}

    @property
    def figures(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for entry in self.document.get("requirements", {}).values():
            merged.update(entry.get("figures", {}))
        merged["acceptance_run_s"] = self.document.get("duration_s")
        return merged


@dataclass
class Trends:
    runs: list[Run]  # oldest first
    regressions: list[str] = field(default_factory=list)
    over_budget: list[str] = field(default_factory=list)


def run_dirs(reports: Path) -> list[Path]:
    """Report folders with a requirements.json, oldest first (their names are UTC stamps)."""
    return sorted(
        p
        for p in reports.iterdir()
        if p.is_dir()
        and not p.is_symlink()
        and len(p.name) == STAMP_LENGTH
        and (p / "requirements.json").is_file()
    )


def load_runs(reports: Path, count: int) -> list[Run]:
    runs = []
    for directory in run_dirs(reports)[-count:]:
        try:
            runs.append(
                Run(directory.name, json.loads((directory / "requirements.json").read_text()))
            )
        except ValueError:
            continue  # a run cut short mid-write: not a data point
    return runs


def compare(runs: list[Run], budgets: dict[str, Any]) -> Trends:
    """What the newest run lost against the one before it, and its figures over budget."""
    trends = Trends(runs)
    if not runs:
        return trends
    newest = runs[-1]
    if len(runs) > 1:
        before = runs[-2].statuses
        trends.regressions = [
            f"{criterion}: {before[criterion]} -> {status}"
            for criterion, status in newest.statuses.items()
            if before.get(criterion) == "passed" and status not in ("passed", "not_run")
        ]
    for name, value in newest.figures.items():
        budget = budget_for(name, budgets)
        if budget is None or not isinstance(value, int | float):
            continue
        key, limit = budget
        if (value < limit) if key.endswith("_min") else (value > limit):
            trends.over_budget.append(f"{name} = {value:g} (budget {key} = {limit:g})")
    return trends


def numeric_figures(runs: list[Run]) -> list[str]:
    names = {n for run in runs for n, v in run.figures.items() if isinstance(v, int | float)}
    return sorted(names)


def page(trends: Trends, budgets: dict[str, Any]) -> str:
    runs = list(reversed(trends.runs))  # newest first, as a person reads it
    head = "".join(f"<th>{html.escape(r.stamp)}</th>" for r in runs)
    criteria = sorted({c for r in runs for c in r.statuses})
    status_rows = []
    for criterion in criteria:
        cells = []
        for run in runs:
            status = run.statuses.get(criterion, "")
            colour = COLOURS.get(status, "#57606a")
            cells.append(
                f"<td style='color:{colour}'>{html.escape(STATUS_WORDS.get(status, status))}</td>"
            )
        status_rows.append(f"<tr><th>{criterion}</th>{''.join(cells)}</tr>")
    figure_rows = []
    for name in numeric_figures(runs):
        budget = budget_for(name, budgets)
        values = "".join(
            f"<td>{run.figures[name]:g}</td>"
            if isinstance(run.figures.get(name), int | float)
            else "<td></td>"
            for run in runs
        )
        shown_budget = f"{budget[1]:g}" if budget else ""
        figure_rows.append(f"<tr><th>{html.escape(name)}</th><td>{shown_budget}</td>{values}</tr>")
    flags = [f"<li class='over'>regressed: {html.escape(r)}</li>" for r in trends.regressions]
    flags += [f"<li class='over'>over budget: {html.escape(o)}</li>" for o in trends.over_budget]
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Acceptance trends</title><style>"
        "body{font-family:system-ui,sans-serif;margin:1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:.1em .4em;"
        "text-align:right;font-size:.9em}th{text-align:left}.over{color:#cf222e}"
        "</style></head><body><h1>Acceptance trends</h1>"
        f"<p>{len(runs)} runs, newest first.</p>"
        f"<h2>Since the previous run</h2><ul>{''.join(flags) or '<li>nothing got worse</li>'}</ul>"
        f"<h2>Criteria</h2><table><tr><th></th>{head}</tr>{''.join(status_rows)}</table>"
        f"<h2>Figures</h2><table><tr><th></th><th>budget</th>{head}</tr>"
        f"{''.join(figure_rows)}</table></body></html>"
    )


def prune(reports: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` runs, with their evidence archives."""
    removed = []
    for directory in run_dirs(reports)[:-keep] if keep > 0 else []:
        shutil.rmtree(directory)
        (reports / f"{directory.name}.evidence.tar.gz").unlink(missing_ok=True)
        removed.append(directory.name)
    return removed


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when nothing got worse since the previous run, 1 when something did."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--reports", type=Path, default=Path("reports"))
    options.add_argument("--runs", type=int, default=14, help="runs shown (default 14)")
    options.add_argument("--keep", type=int, default=0, help="delete all but the newest N runs")
    args = options.parse_args(argv)
    if not args.reports.is_dir():
        print(f"no reports folder at {args.reports}", file=sys.stderr)
        return 2
    budgets_file = Path(__file__).resolve().parents[2] / "benchmarks" / "budgets.toml"
    budgets = tomllib.loads(budgets_file.read_text())
    for name in prune(args.reports, args.keep):
        print(f"pruned {name}")
    trends = compare(load_runs(args.reports, args.runs), budgets)
    (args.reports / "trends.html").write_text(page(trends, budgets))
    summary = {
        "runs": [r.stamp for r in trends.runs],
        "regressions": trends.regressions,
        "over_budget": trends.over_budget,
    }
    (args.reports / "trends.json").write_text(json.dumps(summary, indent=2))
    for line in [*trends.regressions, *trends.over_budget]:
        print(line)
    print(f"trends over {len(trends.runs)} runs: {args.reports / 'trends.html'}")
    return 1 if trends.regressions or trends.over_budget else 0


if __name__ == "__main__":
    raise SystemExit(main())
