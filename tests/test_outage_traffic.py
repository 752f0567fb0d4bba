"""R3.2's burn-rate episode: the outage gets the last hour's average traffic, so the
page's time does not depend on how busy earlier scenarios made the environment."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from steps.common.observability_steps import (
    MAX_OUTAGE_RATE,
    Episode,
    traffic_like_the_last_hour,
)
from steps.support import faults


def episode(alerts: list[tuple[str, str]]) -> Episode:
    environment = cast(Any, SimpleNamespace(name="dev", namespace="ce-dev"))
    return Episode(environment, cast(faults.Fault, None), alerts, [])


PAGE = [("EngineErrorRateHigh", "warning"), ("EngineAvailabilityBudgetBurn", "critical")]


def run(alerts: list[tuple[str, str]], hour: int) -> tuple[str | None, dict[str, object], list]:
    figures: dict[str, object] = {}
    started: list[tuple[object, int]] = []

    def start(environment: object, rate: int) -> str:
        started.append((environment, rate))
        return "reader-extra"

    reader = traffic_like_the_last_hour(
        episode(alerts), 4, lambda _ns: hour, start, figures.__setitem__
    )
    return reader, figures, started


def test_a_busy_hour_gets_its_average_rate_during_the_outage() -> None:
    reader, figures, started = run(PAGE, 100_000)  # 27.8/s on average
    assert reader == "reader-extra"
    assert [rate for _, rate in started] == [24]
    assert figures == {
        "dev_requests_in_the_hour_before_fault": 100_000,
        "dev_requests_per_second_during_fault": 28,
    }


def test_the_added_rate_is_capped() -> None:
    _, figures, started = run(PAGE, 1_000_000)
    assert [rate for _, rate in started] == [MAX_OUTAGE_RATE]
    assert figures["dev_requests_per_second_during_fault"] == 4 + MAX_OUTAGE_RATE


def test_a_quiet_hour_needs_no_more_readers() -> None:
    reader, figures, started = run(PAGE, 177)
    assert reader is None and not started
    assert figures["dev_requests_per_second_during_fault"] == 4


def test_an_episode_without_a_page_is_left_alone() -> None:
    reader, figures, started = run([("EngineHighLatency", "warning")], 100_000)
    assert reader is None and not started and not figures
