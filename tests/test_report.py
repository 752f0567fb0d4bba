"""The requirement coverage in the report: worst status wins, nothing unproven shows as passed."""

import os
from pathlib import Path

from steps.support.report import (
    REQUIREMENT_IDS,
    ReportState,
    ScenarioResult,
    classify_skip,
    coverage,
    host_cpu_use,
)


def state_with(*results: ScenarioResult) -> ReportState:
    state = ReportState(Path("."))
    for result in results:
        state.results[result.nodeid] = result
    return state


def test_all_25_criteria_are_listed_even_without_scenarios() -> None:
    table = coverage(state_with())
    assert list(table) == REQUIREMENT_IDS
    assert len(table) == 25
    assert {entry["status"] for entry in table.values()} == {"not_implemented"}


def test_a_failed_scenario_fails_its_criterion() -> None:
    table = coverage(
        state_with(
            ScenarioResult("a", "a", ["R1.3"], status="passed", figures={"x": 1}),
            ScenarioResult("b", "b", ["R1.3"], status="failed", figures={"y": 2}),
        )
    )
    assert table["R1.3"]["status"] == "failed"
    assert table["R1.3"]["figures"] == {"x": 1, "y": 2}


def test_not_implemented_is_never_passed() -> None:
    table = coverage(
        state_with(
            ScenarioResult("a", "a", ["R2.1"], status="passed"),
            ScenarioResult("b", "b", ["R2.1"], status="not_implemented"),
        )
    )
    assert table["R2.1"]["status"] == "not_implemented"


def test_a_criterion_whose_scenarios_were_deselected_is_not_run_not_unimplemented() -> None:
    state = state_with(ScenarioResult("a", "a", ["R1.3"], status="passed"))
    state.deselected = {"R1.2"}
    table = coverage(state)
    assert table["R1.2"]["status"] == "not_run"
    assert table["R1.3"]["status"] == "passed"
    assert table["R2.1"]["status"] == "not_implemented"


def test_skip_reasons_are_classified() -> None:
    assert classify_skip("Skipped: not implemented: steps are not written yet") == "not_implemented"
    assert classify_skip("not applicable: managed control plane") == "not_applicable"
    assert classify_skip("something else") == "skipped"


def test_what_a_passing_scenario_left_out_stays_with_its_criterion() -> None:
    table = coverage(
        state_with(
            ScenarioResult("a", "a", ["R3.2"], left_out=["node lost in dev (needs node-power)"]),
            ScenarioResult("b", "b", ["R3.1"], status="failed", left_out=["x"]),
        )
    )
    assert table["R3.2"]["status"] == "passed"
    assert table["R3.2"]["left_out"] == ["node lost in dev (needs node-power)"]
    assert table["R3.1"]["left_out"] == []  # a failure is a failure, whatever it left out


def test_host_cpu_is_weighted_by_each_scenarios_time() -> None:
    busy = ScenarioResult("a", "a", ["R1.4"], duration_s=300, host_busy_pct=90.0)
    waiting = ScenarioResult("b", "b", ["R4.2"], duration_s=100, host_busy_pct=10.0)
    unmeasured = ScenarioResult("c", "c", ["R4.3"], duration_s=50)
    use = host_cpu_use([busy, waiting, unmeasured])
    assert use["scenario_seconds"] == 400
    assert use["host_busy_pct"] == 70.0
    assert use["idle_core_seconds"] == round(400 * (os.cpu_count() or 1) * 0.3, 1)
    assert host_cpu_use([unmeasured]) == {}
