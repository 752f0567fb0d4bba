"""`capacity-report`: the long-term capacity aggregates Prometheus keeps, as a CSV and a plot.

Reads the recording rules of infra/monitoring/rules/capacity.rules.yml (CPU and
memory per workload, requests per second, p95 latency, node utilisation) over
a window, so a planner sees trends without writing PromQL.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402 - after the backend is chosen

from deployer.errors import ConfigError  # noqa: E402
from deployer.lower.prometheus import Prometheus  # noqa: E402

log = logging.getLogger(__name__)

SERIES = {
    "capacity:cpu_usage_cores:rate5m": "CPU (cores)",
    "capacity:memory_working_set_bytes": "memory (bytes)",
    "capacity:requests:rate5m": "requests per second",
    "capacity:request_duration_seconds:p95_5m": "p95 latency (s)",
    "capacity:node_cpu_utilisation:rate5m": "node CPU busy (ratio)",
    "capacity:node_memory_utilisation:ratio": "node memory used (ratio)",
}
MAX_POINTS = 2000


@dataclass(frozen=True)
class CapacityReport:
    csv_path: Path
    plot_path: Path
    series: int
    rows: int
    start: float
    end: float


def label_text(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__") or "all"


def write_report(prometheus: Prometheus, out: Path, hours: float) -> CapacityReport:
    """Query each aggregate over the last ``hours``; one CSV row per sample, one panel each."""
    if hours <= 0:
        raise ConfigError(f"--hours must be positive, got {hours}")
    out.mkdir(parents=True, exist_ok=True)
    end = time.time()
    start = end - hours * 3600
    step = max(15.0, (end - start) / MAX_POINTS)
    csv_path, plot_path = out / "capacity.csv", out / "capacity.png"
    figure, axes = plt.subplots(len(SERIES), 1, figsize=(11, 3 * len(SERIES)), sharex=True)
    rows = series = 0
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["metric", "labels", "unix_time", "utc", "value"])
        for axis, (metric, title) in zip(axes, SERIES.items(), strict=True):
            results = prometheus.query_range(metric, start, end, step)
            axis.set_title(f"{title} - {metric}", fontsize=9, loc="left")
            for labels, values in results:
                series += 1
                text = label_text(labels)
                for stamp, value in values:
                    utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
                    writer.writerow([metric, text, f"{stamp:.0f}", utc, value])
                    rows += 1
                axis.plot(
                    [(t - end) / 3600 for t, _ in values],
                    [v for _, v in values],
                    label=text,
                    linewidth=1,
                )
            if results:
                axis.legend(fontsize=6, loc="upper left")
    axes[-1].set_xlabel("hours before now")
    figure.subplots_adjust(left=0.07, right=0.98, top=0.98, bottom=0.04, hspace=0.35)
    figure.savefig(plot_path, dpi=80)
    plt.close(figure)
    log.info("capacity report: %d series, %d samples -> %s, %s", series, rows, csv_path, plot_path)
    return CapacityReport(csv_path, plot_path, series, rows, start, end)
