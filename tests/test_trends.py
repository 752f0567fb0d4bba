"""Trends: a criterion that stops passing, or a figure over its budget, is flagged."""

from __future__ import annotations

import json
from pathlib import Path

from steps.support import trends

BUDGETS = {
    "figures": {"seconds_to_roll_out_*": "rollout.roll_out_seconds"},
    "rollout": {"roll_out_seconds": 120},
}


def write_run(
    reports: Path, stamp: str, status: str, rollout_s: float, left_out: tuple[str, ...] = ()
) -> None:
    directory = reports / stamp
    directory.mkdir(parents=True)
    document = {
        "duration_s": 1500.0,
        "requirements": {
            "R1.4": {
                "status": status,
                "figures": {"seconds_to_roll_out_new_version": rollout_s},
                "left_out": list(left_out),
            },
            "R2.5": {"status": "not_implemented", "figures": {}},
        },
    }
    (directory / "requirements.json").write_text(json.dumps(document))
    (reports / f"{stamp}.evidence.tar.gz").write_bytes(b"")


def test_a_lost_pass_and_a_figure_over_budget_are_flagged(tmp_path: Path) -> None:
    write_run(tmp_path, "20261124T010000Z", "passed", 40.0)
    write_run(tmp_path, "20261125T010000Z", "failed", 130.0)
    result = trends.compare(trends.load_runs(tmp_path, 14), BUDGETS)
    assert result.regressions == ["R1.4: passed -> failed"]
    assert result.over_budget == [
        "seconds_to_roll_out_new_version = 130 (budget rollout.roll_out_seconds = 120)"
    ]
    page = trends.page(result, BUDGETS)
    assert "regressed: R1.4: passed -&gt; failed" in page
    assert page.index("20261125T010000Z") < page.index("20261124T010000Z")  # newest first


def test_a_steady_run_flags_nothing_and_history_is_bounded(tmp_path: Path) -> None:
    for day in range(1, 5):
        write_run(tmp_path, f"2026112{day}T010000Z", "passed", 40.0)
    (tmp_path / "latest").symlink_to("20261124T010000Z")
    assert trends.main(["--reports", str(tmp_path), "--keep", "2"]) == 0
    assert [p.name for p in trends.run_dirs(tmp_path)] == ["20261123T010000Z", "20261124T010000Z"]
    assert not (tmp_path / "20261121T010000Z.evidence.tar.gz").exists()
    assert "nothing got worse" in (tmp_path / "trends.html").read_text()


def test_a_pass_that_now_leaves_a_part_out_is_a_regression(tmp_path: Path) -> None:
    write_run(tmp_path, "20261124T010000Z", "passed", 40.0)
    write_run(tmp_path, "20261125T010000Z", "passed", 40.0, ("node lost (needs node-power)",))
    result = trends.compare(trends.load_runs(tmp_path, 14), BUDGETS)
    assert result.regressions == ["R1.4: passed -> passed_in_part"]
    assert "passed in part" in trends.page(result, BUDGETS)
