"""Security audit trail: one hash-chained event per authentication failure, authorisation
decision on a write, administrative action and rate-limit refusal.

Each process keeps its own chain (``chain`` = host/pid/random) and writes every
event as a JSON log line ``{"msg": "audit", "audit": {...}}`` to stdout, where
the cluster's log collection picks it up. An event's ``hash`` is the SHA-256 of
its canonical JSON (sorted keys, no spaces, without ``hash``) and it carries the
previous event's hash in ``prev`` (64 zeros for the first), so altering,
removing or reordering an event breaks the chain for a verifier
(``python -m deployer audit verify``).
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from ce_engine import logs

GENESIS = "0" * 64
log = logging.getLogger("engine.audit")


def event_hash(event: dict[str, Any]) -> str:
    body = {k: v for k, v in event.items() if k != "hash"}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


class AuditTrail:
    """This process's chain of security events."""

    def __init__(self, service: str, environment: str) -> None:
        self.service = service
        self.environment = environment
        self.chain = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"
        self._seq = 0
        self._prev = GENESIS
        self._lock = threading.Lock()

    def record(
        self,
        *,
        action: str,
        outcome: str,
        status: int,
        subject: str,
        role: str,
        source: str,
        detail: str = "",
    ) -> dict[str, Any]:
        """Append one event (who, what, when, from where, outcome) and log it."""
        with self._lock:
            self._seq += 1
            event: dict[str, Any] = {
                "chain": self.chain,
                "seq": self._seq,
                "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                + f".{time.time_ns() % 10**9 // 10**6:03d}Z",
                "service": self.service,
                "env": self.environment,
                "request_id": logs.request_id.get(),
                "action": action,
                "outcome": outcome,
                "status": status,
                "subject": subject,
                "role": role,
                "source": source,
                "detail": detail,
                "prev": self._prev,
            }
            event["hash"] = event_hash(event)
            self._prev = event["hash"]
        log.info("audit", extra={"fields": {"audit": event}})
        return event


class FailureLimiter:
    """Refuse a client after ``limit`` authentication failures within ``window_s`` (per process)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, source: str, now: float) -> collections.deque[float]:
        times = self._failures.setdefault(source, collections.deque())
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    def note_failure(self, source: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent(source, now).append(now)
            if len(self._failures) > 10_000:  # bounded memory under a spray of sources
                self._failures = {s: t for s, t in self._failures.items() if t}

    def blocked(self, source: str) -> bool:
        with self._lock:
            return len(self._recent(source, time.monotonic())) >= self.limit
