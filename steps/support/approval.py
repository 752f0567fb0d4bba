"""The approval page: what a release approver reads first, not an engineer's test log.

Built from requirements.json's content (so an old run's page can be made again):
a verdict and counts first, then each criterion in the user's own words with its
verdict, the scenarios that prove it, each measured figure beside its budget,
the evidence files (plots and screenshots shown), and for a failure its reason
and the end of its output.
"""

from __future__ import annotations

import fnmatch
import html
import json
import tomllib
from pathlib import Path
from typing import Any

STATUS_WORDS = {
    "passed": "passed",
    "passed_in_part": "passed in part",
    "failed": "FAILED",
    "not_implemented": "not implemented",
    "not_applicable": "not applicable here",
    "not_run": "not run (deselected)",
    "skipped": "skipped",
}
COLOURS = {
    "passed": "#1a7f37",
    "passed_in_part": "#9a6700",
    "failed": "#cf222e",
    "not_implemented": "#9a6700",
    "not_applicable": "#57606a",
    "not_run": "#57606a",
    "skipped": "#57606a",
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg")
STYLE = """
.approval{font-family:system-ui,sans-serif;max-width:70em;color:#1f2328;line-height:1.4}
.approval .badge{display:inline-block;padding:.1em .6em;border-radius:1em;color:#fff;
  font-weight:600}
.approval .criterion{border:1px solid #d0d7de;border-radius:6px;padding:.6em 1em;margin:.8em 0}
.approval .words{font-size:1.1em}.approval .original{color:#57606a;font-style:italic;margin-top:0}
.approval table.figures{border-collapse:collapse;margin:.4em 0}
.approval table.figures td,.approval table.figures th{border:1px solid #d0d7de;
  padding:.15em .5em;text-align:left}
.approval .over{color:#cf222e;font-weight:600}.approval .within{color:#1a7f37}
.approval pre{background:#f6f8fa;padding:.5em;overflow-x:auto;font-size:.85em}
.approval .counts span{margin-right:1.2em}
.approval img{max-width:100%;border:1px solid #d0d7de}
"""


def shown_status(entry: dict[str, Any]) -> str:
    """A criterion's status as a reader is told it: a pass that left parts out (what this
    cluster cannot do) is "passed_in_part", never a plain pass."""
    status: str = entry["status"]
    return "passed_in_part" if status == "passed" and entry.get("left_out") else status


def load_criteria(path: Path) -> list[dict[str, Any]]:
    """features/criteria.toml: groups (persona, goal) of criteria (id, when, then, original)."""
    groups: list[dict[str, Any]] = tomllib.loads(path.read_text())["group"]
    return groups


def budget_for(name: str, budgets: dict[str, Any]) -> tuple[str, float] | None:
    """The budget (its key and value) that ``[figures]`` in budgets.toml gives this figure."""
    for pattern, key in budgets.get("figures", {}).items():
        if fnmatch.fnmatchcase(name, pattern):
            section, _, entry = str(key).partition(".")
            value = budgets.get(section, {}).get(entry)
            if isinstance(value, int | float):
                return key, float(value)
    return None


def figure_row(name: str, value: Any, budgets: dict[str, Any]) -> str:
    cells = f"<td>{html.escape(name)}</td><td>{html.escape(_shown(value))}</td>"
    budget = budget_for(name, budgets)
    if budget is None or not isinstance(value, int | float):
        return f"<tr>{cells}<td></td></tr>"
    key, limit = budget
    floor = key.endswith("_min")
    within = value >= limit if floor else value <= limit
    word = "within" if within else "over"
    return (
        f"<tr>{cells}<td class='{word}'>{'≥' if floor else '≤'} {_shown(limit)} "
        f"({'within budget' if within else 'OVER BUDGET'})</td></tr>"
    )


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)[:400]


# Longer is no file name (a figure that is a sentence once made stat() raise ENAMETOOLONG).
MAX_FILE_NAME = 255


def evidence_files(figures: dict[str, Any], evidence: Path) -> list[str]:
    """Figures whose value names a file the scenario kept under evidence/."""
    return [
        value
        for value in figures.values()
        if isinstance(value, str)
        and 0 < len(value.encode()) <= MAX_FILE_NAME
        and "/" not in value
        and (evidence / value).is_file()
    ]


def criterion_section(
    criterion: dict[str, Any],
    entry: dict[str, Any],
    budgets: dict[str, Any],
    evidence: Path,
    able_to_fail: list[str],
) -> str:
    shown = shown_status(entry)
    left_out = entry.get("left_out", []) if shown == "passed_in_part" else []
    badge = f"<span class='badge' style='background:{COLOURS[shown]}'>{STATUS_WORDS[shown]}</span>"
    parts = [
        f"<section class='criterion' id='{criterion['id']}'>",
        f"<h3>{criterion['id']} {badge}</h3>",
        f"<p class='words'><b>When</b> {html.escape(criterion['when'])}, "
        f"<b>then</b> {html.escape(criterion['then'])}.</p>",
        f"<p class='original'>{html.escape(criterion['original'])}</p>",
    ]
    if left_out:
        parts.append(
            "<p><b>Not checked on this cluster:</b> "
            + "; ".join(html.escape(what) for what in left_out)
            + ". The rest of the criterion passed; run on a cluster that can do this too.</p>"
        )
    if able_to_fail:
        parts.append(
            "<p>Shown able to fail: "
            + ", ".join(html.escape(c) for c in able_to_fail)
            + " (the protection was taken away and this criterion's scenario failed).</p>"
        )
    scenarios = entry.get("scenarios", [])
    if not scenarios:
        parts.append("<p>No scenario proves this criterion yet.</p>")
    for scenario in scenarios:
        title = scenario.get("title") or scenario["name"]
        line = (
            f"<li>{html.escape(title)}: <b style='color:{COLOURS[scenario['status']]}'>"
            f"{STATUS_WORDS[scenario['status']]}</b> ({scenario.get('duration_s', 0):.0f} s"
            + (
                f", host CPU {scenario['host_busy_pct']:.0f} % busy)"
                if scenario.get("host_busy_pct") is not None
                else ")"
            )
        )
        if scenario["status"] != "passed" and scenario.get("reason"):
            line += f"<br>Reason: {html.escape(scenario['reason'])}"
        if scenario.get("detail"):
            line += f"<pre>{html.escape(scenario['detail'])}</pre>"
        parts.append(f"<ul>{line}</li></ul>")
    figures = entry.get("figures", {})
    if figures:
        rows = "".join(figure_row(k, v, budgets) for k, v in figures.items())
        parts.append(
            "<details><summary>Measured figures "
            f"({len(figures)})</summary><table class='figures'><tr><th>figure</th><th>value</th>"
            f"<th>budget</th></tr>{rows}</table></details>"
        )
    for name in evidence_files(figures, evidence):
        target = html.escape(f"evidence/{name}")
        if name.endswith(IMAGE_SUFFIXES):
            parts.append(f"<p><img src='{target}' alt='{html.escape(name)}'></p>")
        else:
            parts.append(f"<p>Evidence: <a href='{target}'>{html.escape(name)}</a></p>")
    parts.append("</section>")
    return "\n".join(parts)


def shown_able_to_fail(controls: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Criterion -> the negative controls that made its scenario fail (from their last run)."""
    found: dict[str, list[str]] = {}
    for control in controls:
        if control.get("verdict") != "detected":
            continue
        for criterion in str(control.get("protects", "")).split(","):
            if criterion.strip():
                found.setdefault(criterion.strip(), []).append(str(control["control"]))
    return found


def latest_controls(reports: Path) -> tuple[str, list[dict[str, Any]]]:
    """Each negative control's newest result in reports/ (the runs' file names, and the
    entries): a run of one control (``--only``) updates that control, not the others."""
    newest: dict[str, dict[str, Any]] = {}
    used: list[str] = []
    for run in sorted(reports.glob("negative-controls-*.json")):
        try:
            entries: list[dict[str, Any]] = json.loads(run.read_text())
        except ValueError:
            continue
        used.append(run.name)
        for entry in entries:
            newest[str(entry.get("control"))] = entry
    if not used:
        return "", []
    shown = used[-1] if len(used) == 1 else f"{used[0]} to {used[-1]}, newest per control"
    return shown, list(newest.values())


def page(
    document: dict[str, Any],
    groups: list[dict[str, Any]],
    budgets: dict[str, Any],
    evidence: Path,
    controls: tuple[str, list[dict[str, Any]]],
) -> str:
    """The whole approval page (a body fragment wrapped by ``standalone``)."""
    table: dict[str, dict[str, Any]] = document["requirements"]
    counts = document["summary"]
    controls_file, control_entries = controls
    able = shown_able_to_fail(control_entries)
    failed = counts.get("failed", 0) + counts.get("skipped", 0)
    implemented = len(table) - counts.get("not_implemented", 0)
    session = document.get("session", {})
    if "could_not_run" in session:
        verdict = f"COULD NOT RUN: {session['could_not_run']}"
        colour = COLOURS["not_applicable"]
    elif failed:
        verdict = f"NOT COMPLIANT: {failed} {'criterion' if failed == 1 else 'criteria'} failed"
        colour = COLOURS["failed"]
    elif document.get("pytest_exit_status", 0) not in (0,):
        verdict, colour = "COULD NOT COMPLETE: the run stopped with an error", COLOURS["failed"]
    else:
        verdict = f"All {counts.get('passed', 0)} criteria that ran passed"
        if counts.get("passed_in_part"):
            verdict += f", {counts['passed_in_part']} of them only in part"
        colour = COLOURS["passed"]
    facts = ", ".join(
        f"{k.replace('_', ' ')}: {html.escape(_shown(v))}"
        for k, v in session.items()
        if not isinstance(v, dict)
    )
    summary = [
        "<h1>Consciousness Engine: acceptance criteria</h1>",
        f"<p><span class='badge' style='background:{colour};font-size:1.2em'>"
        f"{html.escape(verdict)}</span></p>",
        "<p class='counts'>"
        + "".join(
            f"<span><b>{counts.get(status, 0)}</b> {STATUS_WORDS[status]}</span>"
            for status in ("passed", "failed", "not_implemented", "not_applicable", "not_run")
        )
        + f"<span><b>{len(able)}</b> shown able to fail</span></p>",
        f"<p>Run of {html.escape(document.get('generated_utc', '?'))}, "
        f"{document.get('duration_s', 0) / 60:.1f} minutes{'; ' + facts if facts else ''}.</p>",
        f"<p>{implemented} of 25 criteria have scenarios. "
        + (
            f"Negative controls ({html.escape(controls_file)}): "
            f"{sum(1 for c in control_entries if c.get('verdict') == 'detected')} of "
            f"{len(control_entries)} protections, when taken away, made their scenario fail."
            if controls_file
            else "No negative-control run is on record here."
        )
        + "</p>",
    ]
    for heading, keys in (
        ("Failed", [k for k, v in table.items() if v["status"] in ("failed", "skipped")]),
        (
            "Passed only in part (parts this cluster cannot check)",
            [k for k, v in table.items() if shown_status(v) == "passed_in_part"],
        ),
    ):
        if keys:
            links = ", ".join(f"<a href='#{k}'>{k}</a>" for k in keys)
            summary.append(f"<p><b>{heading}:</b> {links}</p>")
    body = summary
    for group in groups:
        body.append(f"<h2>{group['id']}: {html.escape(group['persona'])}, {group['goal']}</h2>")
        for criterion in group["criterion"]:
            entry = table.get(criterion["id"], {"status": "not_implemented", "scenarios": []})
            body.append(
                criterion_section(
                    criterion, entry, budgets, evidence, able.get(criterion["id"], [])
                )
            )
    other = document.get("other_scenarios", [])
    if other:
        body.append("<h2>The cluster itself (smoke)</h2><ul>")
        body += [
            f"<li>{html.escape(s.get('title') or s['name'])}: "
            f"<b style='color:{COLOURS[s['status']]}'>{STATUS_WORDS[s['status']]}</b></li>"
            for s in other
        ]
        body.append("</ul>")
    return "\n".join(body)


def embedded(fragment: str) -> str:
    """The page inside another one (pytest-html's report): its styles apply to it only."""
    return f"<style>{STYLE}</style><div class='approval'>{fragment}</div>"


def standalone(fragment: str) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Acceptance criteria: approval summary</title></head>"
        f"<body style='margin:1em auto;max-width:72em'>{embedded(fragment)}</body></html>"
    )
