"""Verify the engine's hash-chained audit events, independently of the code that wrote them.

Format (engine/src/ce_engine/audit.py): JSON log lines with an ``audit``
object; per ``chain``, ``seq`` counts from 1, ``prev`` is the previous event's
``hash`` (64 zeros first) and ``hash`` is the SHA-256 of the event's canonical
JSON without ``hash``. A verifier that only sees the log can detect an event
altered, removed or moved in the middle of a chain; a cut at the very end
looks like a shorter chain and needs an external anchor (the shipped copy).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64


def event_hash(event: dict[str, Any]) -> str:
    body = {k: v for k, v in event.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def audit_events(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The audit events among log lines, in log order (other lines are skipped)."""
    events = []
    for line in lines:
        if '"audit"' not in line:
            continue
        try:
            entry = json.loads(line[line.index("{") :])
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("audit"), dict):
            events.append(entry["audit"])
    return events


@dataclass
class ChainReport:
    chains: dict[str, int] = field(default_factory=dict)  # chain -> events verified
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems and bool(self.chains)


def verify(events: Iterable[dict[str, Any]]) -> ChainReport:
    report = ChainReport()
    previous: dict[str, dict[str, Any]] = {}
    for event in events:
        chain = str(event.get("chain", "?"))
        last = previous.get(chain)
        expected_seq = (last["seq"] + 1) if last else 1
        expected_prev = last["hash"] if last else GENESIS
        where = f"chain {chain} event seq={event.get('seq')}"
        if event.get("hash") != event_hash(event):
            report.problems.append(f"{where}: content does not match its hash (altered)")
        if event.get("seq") != expected_seq:
            report.problems.append(
                f"{where}: expected seq={expected_seq} (an event was removed or reordered)"
            )
        elif event.get("prev") != expected_prev:
            report.problems.append(f"{where}: prev does not link to the event before it")
        previous[chain] = event
        report.chains[chain] = report.chains.get(chain, 0) + 1
    return report
