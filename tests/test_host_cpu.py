"""The host's CPU shares that R5.3 records beside its figures, and its settle wait."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterator

import pytest

from steps.support import host_cpu

Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")


def feed(monkeypatch: pytest.MonkeyPatch, *readings: Times) -> None:
    """psutil.cpu_times() answers these, one per call; time.sleep returns at once."""
    answers: Iterator[Times] = iter(readings)
    monkeypatch.setattr(host_cpu.psutil, "cpu_times", lambda: next(answers))
    monkeypatch.setattr(host_cpu.time, "sleep", lambda seconds: None)


def times(busy: float, idle: float, steal: float = 0.0, guest: float = 0.0) -> Times:
    return Times(busy, 0.0, 0.0, idle, 0.0, 0.0, 0.0, steal, guest, 0.0)


def test_busy_and_steal_are_shares_of_all_the_time_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    # guest time is inside user time already: counting it again would shrink every share
    feed(monkeypatch, times(100, 100), times(160, 120, steal=20, guest=50))
    share = host_cpu.CpuWindow().share()
    assert (share.busy_pct, share.steal_pct) == (60.0, 20.0)


def test_settle_stops_at_the_first_calm_window(monkeypatch: pytest.MonkeyPatch) -> None:
    feed(monkeypatch, times(0, 0), times(90, 10), times(90, 10), times(100, 100))
    waited, share = host_cpu.settle(busy_below_pct=60, window_s=5, deadline_s=60)
    assert share.busy_pct == 10.0
    assert waited < 60


def test_settle_gives_up_at_its_deadline_and_says_how_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed(monkeypatch, times(0, 0), times(95, 5))
    waited, share = host_cpu.settle(busy_below_pct=60, window_s=5, deadline_s=0)
    assert share.busy_pct == 95.0
    assert "busy 95 %" in str(share)
