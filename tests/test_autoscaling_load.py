"""R1.2's job rate: raised only while engine-worker has not scaled and reads under target."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, cast

from steps.common import autoscaling_steps
from steps.common.autoscaling_steps import Load, Scaled, raise_jobs_while_under_target
from steps.support.environments import Environment
from steps.support.kube import Kube


class FakeKube:
    """The autoscaler's reading, and the commands run in the job pod."""

    def __init__(self, reading: int | None, target: int = 70) -> None:
        current = [] if reading is None else [cpu_metric(reading)]
        hpa = SimpleNamespace(
            spec=SimpleNamespace(
                metrics=[
                    SimpleNamespace(
                        resource=SimpleNamespace(target=SimpleNamespace(average_utilization=target))
                    )
                ]
            ),
            status=SimpleNamespace(current_metrics=current),
        )
        self.autoscaling = SimpleNamespace(read_namespaced_horizontal_pod_autoscaler=lambda *_: hpa)
        self.commands: list[list[str]] = []

    def exec(self, namespace: str, pod: str, command: list[str]) -> tuple[int, str]:
        self.commands.append(command)
        return 0, ""


def cpu_metric(reading: int) -> Any:
    current = SimpleNamespace(average_utilization=reading)
    return SimpleNamespace(resource=SimpleNamespace(name="cpu", current=current))


def load(seconds_since_last_rate: float, rate: float = 2.0, scaled_out: float = 0.0) -> Load:
    now = time.time()
    worker = Scaled("engine-worker", 2, 6, scaled_out_after=scaled_out)
    return Load(
        "clients",
        "jobs-1",
        "requests-1",
        now - 100,
        {"engine-worker": worker},
        job_rate=rate,
        rate_since=now - seconds_since_last_rate,
    )


ENVIRONMENT = cast(Environment, SimpleNamespace(namespace="ce-production"))


def raised(kube: FakeKube, state: Load) -> bool:
    raise_jobs_while_under_target(cast(Kube, kube), ENVIRONMENT, state)
    return bool(kube.commands)


def test_a_worker_under_target_gets_twice_the_jobs() -> None:
    kube, state = FakeKube(reading=40), load(seconds_since_last_rate=50)
    assert raised(kube, state)
    assert state.job_rate == 4.0
    assert "echo 4.0 > /tmp/rate.new" in kube.commands[0][-1]
    assert "40 % of its request, target 70 %" in state.raises[0]


def test_no_raise_at_or_over_target_without_a_reading_or_too_soon() -> None:
    assert not raised(FakeKube(reading=70), load(seconds_since_last_rate=50))
    assert not raised(FakeKube(reading=None), load(seconds_since_last_rate=50))
    too_soon = autoscaling_steps.RAISE_AFTER_S - 5
    assert not raised(FakeKube(reading=10), load(seconds_since_last_rate=too_soon))


def test_no_raise_once_scaled_out_or_at_the_ceiling() -> None:
    assert not raised(FakeKube(reading=10), load(50, scaled_out=33.0))
    ceiling = autoscaling_steps.MAX_JOBS_PER_SECOND
    assert not raised(FakeKube(reading=10), load(50, rate=ceiling))
    state = load(50, rate=ceiling * 0.75)
    assert raised(FakeKube(reading=10), state)
    assert state.job_rate == ceiling
