"""The host's CPU around timing-sensitive work. With a kind cluster built here the host is
every node at once, so its CPU says what else the cluster was doing during a measurement
and whether the hypervisor took CPU away from this machine (steal)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class CpuShare:
    """Shares of the host's CPU time over one window, in percent of all its cores."""

    busy_pct: float
    steal_pct: float
    seconds: float

    def __str__(self) -> str:
        shares = f"host busy {self.busy_pct:.0f} %, steal {self.steal_pct:.0f} %"
        return f"{shares} over {self.seconds:.0f} s"


class CpuWindow:
    """Opened before the work, read after it: the host's CPU shares in between."""

    def __init__(self) -> None:
        self._times = psutil.cpu_times()
        self._started = time.monotonic()

    def share(self) -> CpuShare:
        before, after = self._times, psutil.cpu_times()
        spent = {field: getattr(after, field) - getattr(before, field) for field in before._fields}
        # guest time is already counted in user and nice
        total = sum(v for k, v in spent.items() if k not in ("guest", "guest_nice")) or 1.0
        steal = spent.get("steal", 0.0)
        idle = spent["idle"] + spent.get("iowait", 0.0)
        return CpuShare(
            busy_pct=round(100 * (total - idle - steal) / total, 1),
            steal_pct=round(100 * steal / total, 1),
            seconds=round(time.monotonic() - self._started, 1),
        )


def settle(busy_below_pct: float, window_s: float, deadline_s: float) -> tuple[float, CpuShare]:
    """Wait, up to ``deadline_s``, for one ``window_s`` window in which the host was busy
    less than ``busy_below_pct``: what the cluster was still doing (a deploy finishing,
    pods of the last scenario terminating) then weighs on none of the measurements.
    Returns the seconds waited and the last window; the caller records both, and goes
    on after the deadline (a busy machine is reported, not hidden)."""
    started = time.monotonic()
    while True:
        window = CpuWindow()
        time.sleep(window_s)  # the measurement window itself, not a wait for an event
        share = window.share()
        waited = time.monotonic() - started
        if share.busy_pct < busy_below_pct or waited >= deadline_s:
            return round(waited, 1), share
