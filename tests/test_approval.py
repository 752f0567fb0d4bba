"""The approval page reads for a person: the user's words, verdicts, budgets, reasons."""

from __future__ import annotations

import struct
import tomllib
from pathlib import Path

from steps.support import approval, browser
from steps.support.report import ReportState, ScenarioResult, run_document

ROOT = Path(__file__).resolve().parent.parent


def document(*results: ScenarioResult) -> dict[str, object]:
    state = ReportState(Path("."))
    for result in results:
        state.results[result.nodeid] = result
    return run_document(state, ROOT, 1 if any(r.status == "failed" for r in results) else 0)


def rendered(doc: dict[str, object], tmp_path: Path, controls: list[dict[str, object]]) -> str:
    budgets = tomllib.loads((ROOT / "benchmarks" / "budgets.toml").read_text())
    groups = approval.load_criteria(ROOT / "features" / "criteria.toml")
    return approval.page(doc, groups, budgets, tmp_path, ("negative-controls-x.json", controls))


ROLLOUT = ScenarioResult(
    "steps/test_platform.py::test_rollout",
    "test_rollout",
    ["R1.4"],
    title="A new version rolls out, and back",
    figures={"failed_requests_during_rollouts": 0, "seconds_to_roll_out_new_version": 130.5},
)
KILLED = ScenarioResult(
    "steps/test_platform.py::test_heal",
    "test_heal",
    ["R1.3"],
    title="The engine heals killed processes",
    status="failed",
    reason="call: AssertionError: engine-api was not Ready again within 60 s",
    detail="E   AssertionError: engine-api was not Ready again within 60 s",
)


def test_every_criterion_is_shown_in_the_users_words_with_its_verdict(tmp_path: Path) -> None:
    page = rendered(document(ROLLOUT), tmp_path, [])
    for group in approval.load_criteria(ROOT / "features" / "criteria.toml"):
        for criterion in group["criterion"]:
            assert f"id='{criterion['id']}'" in page
            assert criterion["original"].replace("'", "&#x27;") in page
    assert "A new version rolls out, and back" in page
    assert page.count("No scenario proves this criterion yet") == 24
    assert "All 1 criteria that ran passed" in page


def test_a_failure_says_not_compliant_with_its_reason_and_output(tmp_path: Path) -> None:
    page = rendered(document(ROLLOUT, KILLED), tmp_path, [])
    assert "NOT COMPLIANT: 1 criterion failed" in page
    assert "engine-api was not Ready again within 60 s" in page
    assert "<pre>E   AssertionError" in page
    assert "<b>Failed:</b> <a href='#R1.3'>R1.3</a>" in page


def test_each_figure_is_beside_its_budget(tmp_path: Path) -> None:
    page = rendered(document(ROLLOUT), tmp_path, [])
    assert "≤ 0 (within budget)" in page  # zero failed requests: the absolute budget
    assert "≤ 120 (OVER BUDGET)" in page  # 130.5 s against roll_out_seconds = 120
    budgets = {
        "figures": {"retention_days": "obs.retention_days_min"},
        "obs": {"retention_days_min": 395},
    }
    assert "≥ 395 (within budget)" in approval.figure_row("retention_days", 400, budgets)
    assert "OVER BUDGET" in approval.figure_row("retention_days", 30, budgets)


def test_negative_controls_mark_criteria_shown_able_to_fail(tmp_path: Path) -> None:
    controls = [
        {"control": "no-liveness-probe", "protects": "R1.3", "verdict": "detected"},
        {"control": "no-drain", "protects": "R1.4, R1.3", "verdict": "missed"},
    ]
    page = rendered(document(ROLLOUT), tmp_path, controls)
    assert "<b>1</b> shown able to fail" in page
    assert "Shown able to fail: no-liveness-probe" in page
    assert "1 of 2 protections" in page


def test_evidence_images_are_shown(tmp_path: Path) -> None:
    (tmp_path / "live-view.png").write_bytes(b"\x89PNG")
    shot = ScenarioResult("n", "n", ["R3.4"], figures={"live_view_screenshot": "live-view.png"})
    assert "<img src='evidence/live-view.png'" in rendered(document(shot), tmp_path, [])


def test_the_page_renders_in_a_browser(tmp_path: Path) -> None:
    """Headless Chromium, as an approver's browser: the verdict is on screen, the shot not blank."""
    html = tmp_path / "summary.html"
    html.write_text(approval.standalone(rendered(document(ROLLOUT, KILLED), tmp_path, [])))
    shot = browser.render(html.as_uri(), tmp_path / "summary.png", window="1200,900")
    assert "NOT COMPLIANT: 1 criterion failed" in shot.text
    assert "the deployment has zero downtime." in shot.text
    header = shot.png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1200, 900)
    assert shot.png.stat().st_size > 20_000  # a blank page compresses to a few kB


def test_a_pass_that_left_parts_out_says_so_first(tmp_path: Path) -> None:
    partial = ScenarioResult(
        "steps/test_observability.py::test_faults",
        "test_faults",
        ["R3.2"],
        title="Real faults raise their alerts",
        left_out=["node lost in dev (needs node-power)"],
    )
    doc = document(ROLLOUT, partial)
    assert doc["summary"]["passed"] == 2 and doc["summary"]["passed_in_part"] == 1
    page = rendered(doc, tmp_path, [])
    assert "All 2 criteria that ran passed, 1 of them only in part" in page
    assert "<b>Passed only in part (parts this cluster cannot check):</b> <a href='#R3.2'>" in page
    assert "passed in part</span>" in page
    assert "Not checked on this cluster:</b> node lost in dev (needs node-power)" in page


def test_a_run_of_one_control_updates_that_control_only(tmp_path: Path) -> None:
    (tmp_path / "negative-controls-20261127T000000Z.json").write_text(
        '[{"control": "a", "protects": "R1.3", "verdict": "detected"},'
        ' {"control": "b", "protects": "R1.4", "verdict": "missed"}]'
    )
    (tmp_path / "negative-controls-20261127T010000Z.json").write_text(
        '[{"control": "b", "protects": "R1.4", "verdict": "detected"}]'
    )
    shown, entries = approval.latest_controls(tmp_path)
    assert shown.endswith("newest per control")
    assert sorted((e["control"], e["verdict"]) for e in entries) == [
        ("a", "detected"),
        ("b", "detected"),
    ]


def test_a_figure_too_long_for_a_file_name_is_a_figure_not_a_crash(tmp_path: Path) -> None:
    """R5.3's pod placement is a long sentence; the report once died on stat()ing it."""
    (tmp_path / "etcd-raw.txt").write_text("k8s:enc:aescbc:v1:key1")
    figures = {"placement": "dev: engine-api ce-acceptance-worker2; " * 20, "raw": "etcd-raw.txt"}
    assert approval.evidence_files(figures, tmp_path) == ["etcd-raw.txt"]


def test_the_slo_page_is_held_to_its_own_budget_and_cause_alerts_to_30_seconds() -> None:
    """The burn-rate page cannot fire before 1.44 % of the hour failed (52 s of a total
    outage, per its promtool test); the cause alerts keep the 30-second budget."""
    budgets = tomllib.loads((ROOT / "benchmarks" / "budgets.toml").read_text())
    page = approval.budget_for("dev_EngineAvailabilityBudgetBurn_seconds_to_receiver", budgets)
    cause = approval.budget_for("dev_EngineErrorRateHigh_seconds_to_receiver", budgets)
    assert page == ("observability.slo_page_to_receiver_seconds", 82)
    assert cause == ("observability.fault_to_alert_at_receiver_seconds", 30)
