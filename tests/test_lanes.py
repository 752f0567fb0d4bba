"""Two lanes under pytest-xdist: which scenario goes where, the lock that keeps an @alone
scenario alone, what the main lane publishes, and the report the controller rebuilds."""

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from deployer.actions.engine_images import EngineImages
from steps.support import lanes
from steps.support.environments import Environment
from steps.support.report import STATE_KEY, Recorder, ReportState, pytest_testnodedown


def fake_item(*marks: str) -> Any:
    return SimpleNamespace(get_closest_marker=lambda name: object() if name in marks else None)


def main_lane_config(board: Path) -> Any:
    config = SimpleNamespace(workerinput={lanes.BOARD_KEY: str(board)}, stash=pytest.Stash())
    config.stash[lanes.LANE] = lanes.MAIN
    return config


@pytest.mark.parametrize(
    ("marks", "environments", "side"),
    [
        ((), ["dev", "production"], True),  # R5.1: neither disturbs nor is ordered
        (("smoke",), [], True),
        (("alone",), ["dev"], False),  # a node lost, Prometheus restarted, faults
        (("quiet",), ["dev", "production"], False),  # timing trials
        (("light",), ["dev"], False),  # runs beside the pipeline's staging deploy
        (("delivery",), ["staging"], False),  # last, after the side lane
        ((), ["staging", "production"], False),  # the pipeline takes staging over
    ],
)
def test_the_side_lane_takes_only_what_disturbs_nothing_and_needs_no_order(
    marks: tuple[str, ...], environments: list[str], side: bool
) -> None:
    assert lanes.side_eligible(fake_item(*marks), environments) is side


def test_the_scheduler_sends_each_lane_whole_to_one_worker(tmp_path: Path) -> None:
    board = lanes.Board(tmp_path)
    board.publish(lanes.LANES, {"a.py::test_one": lanes.SIDE, "a.py::test_two": lanes.MAIN})
    scheduler: Any = SimpleNamespace(shared=board)
    scope = lanes.LaneScheduling._split_scope
    assert scope(scheduler, "a.py::test_one") == lanes.SIDE
    assert scope(scheduler, "a.py::test_two") == lanes.MAIN
    assert scope(scheduler, "a.py::unknown") == lanes.MAIN


def test_an_alone_scenario_waits_for_the_other_lane_and_holds_it_off(tmp_path: Path) -> None:
    """Side 1 runs; the alone scenario waits for it; side 2, arriving while the alone one
    waits, does not slip in ahead of it (the turnstile), and starts once it has ended."""
    board = lanes.Board(tmp_path)
    started = {name: threading.Event() for name in ("side 1", "alone", "side 2")}
    finish = {name: threading.Event() for name in started}
    order: list[str] = []

    def scenario(name: str, exclusive: bool) -> threading.Thread:
        def run() -> None:
            with board.turn(exclusive, name):
                order.append(name)
                started[name].set()
                finish[name].wait(10)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    threads = [scenario("side 1", False)]
    assert started["side 1"].wait(5)
    threads.append(scenario("alone", True))
    assert not started["alone"].wait(0.5), "the alone scenario started beside side 1"
    threads.append(scenario("side 2", False))
    assert not started["side 2"].wait(0.5), "side 2 slipped in ahead of the waiting one"
    finish["side 1"].set()
    assert started["alone"].wait(5)
    assert not started["side 2"].wait(0.5), "side 2 started beside the alone scenario"
    finish["alone"].set()
    assert started["side 2"].wait(5)
    finish["side 2"].set()
    for thread in threads:
        thread.join(5)
    assert order == ["side 1", "alone", "side 2"]


def test_two_side_scenarios_and_the_main_lanes_shared_ones_run_together(tmp_path: Path) -> None:
    board = lanes.Board(tmp_path)
    with board.turn(False, "main"), board.turn(False, "side"):
        pass  # both held at once: no deadlock, no wait


def test_the_side_lane_fails_fast_on_what_the_main_lane_could_not_provide(
    tmp_path: Path,
) -> None:
    board = lanes.Board(tmp_path)
    board.publish("environment-dev", {"error": "deploy of dev failed: timed out"})
    with pytest.raises(pytest.fail.Exception, match="could not provide 'dev'.*timed out"):
        board.await_document("environment-dev", "'dev' environment")
    board.publish("environment-qa", {"error": "not applicable: needs --registry"})
    with pytest.raises(pytest.skip.Exception, match="not applicable"):
        board.await_document("environment-qa", "'qa' environment")
    board.publish(lanes.MAIN_FINISHED, {"pid": 1})
    with pytest.raises(pytest.fail.Exception, match="finished without it"):
        board.await_document("environment-staging", "'staging' environment")


def test_the_side_lane_sees_the_environment_the_main_lane_deployed(tmp_path: Path) -> None:
    images = EngineImages("api:1", "worker:1", "pg:1", "abc", sbom=Path("/tmp/sbom.json"))
    deployed = Environment("dev", "ce-dev", images, "ce-test-client-dev-1", "client", "k")
    announce = lanes.announcer(main_lane_config(tmp_path))
    assert announce is not None
    announce("dev", deployed)
    side: Any = lanes.PublishedEnvironments(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        "toolbox",
        shared=lanes.Board(tmp_path),
    )
    assert side.ensure("dev") == deployed


def test_a_scenario_report_handed_over_by_xdist_keeps_its_criteria_figures_and_verdict() -> None:
    """xdist hands the controller reports, not items: what the report needs travels on
    them and survives the serialisation xdist uses."""
    state = ReportState(Path("."))
    recorder = Recorder(state)
    scenario = {"name": "test_r14", "requirements": ["R1.4"], "title": "A new version"}
    for when, outcome, longrepr in [
        ("setup", "passed", None),
        ("call", "failed", "AssertionError: 3 of 900 requests failed"),
        ("teardown", "passed", None),
    ]:
        report = pytest.TestReport(
            "steps/test_platform.py::test_r14",
            ("steps/test_platform.py", 1, "test_r14"),
            {"R1.4": 1},
            outcome,  # type: ignore[arg-type]
            longrepr,
            when,  # type: ignore[arg-type]
            user_properties=[("figure.requests_failed", 3)],
            duration=2.0,
        )
        report.ce_scenario = scenario  # type: ignore[attr-defined]
        if when == "teardown":
            report.ce_host_busy_pct = 64.5  # type: ignore[attr-defined]
        recorder.pytest_runtest_logreport(pytest.TestReport._from_json(report._to_json()))
    result = state.results["steps/test_platform.py::test_r14"]
    assert (result.status, result.requirements, result.title) == (
        "failed",
        ["R1.4"],
        "A new version",
    )
    assert "3 of 900 requests failed" in result.reason
    assert result.figures == {"requests_failed": 3}
    assert (result.duration_s, result.host_busy_pct) == (6.0, 64.5)


def test_a_workers_session_facts_and_deselected_criteria_reach_the_controller() -> None:
    state = ReportState(Path("."))
    config = SimpleNamespace(stash=pytest.Stash())
    config.stash[STATE_KEY] = state
    handed = {"session": {"cluster_seconds_to_ready": 61.2}, "deselected": ["R3.2"]}
    pytest_testnodedown(SimpleNamespace(config=config, workeroutput={"ce_report": handed}), None)
    assert state.session == {"cluster_seconds_to_ready": 61.2}
    assert state.deselected == {"R3.2"}
