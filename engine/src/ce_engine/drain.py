"""Graceful drain: on SIGTERM, report not-ready first, keep serving, then let the server stop.

uvicorn stops accepting connections as soon as it sees SIGTERM. Load balancers
and kube-proxy need a moment to stop sending new requests, so we put our
handler in front of the server's: readiness turns false at once, requests keep
being served for ``seconds``, and only then does the server's own handler run
(stop accepting, finish in-flight requests, exit). It is installed from the
application's lifespan, so it works the same in every worker process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("engine.drain")


def install(seconds: float, on_drain: Callable[[], None]) -> bool:
    """Chain a drain before the current SIGTERM handler; False if there is none to chain to."""
    if threading.current_thread() is not threading.main_thread():
        return False  # signals reach only the main thread (e.g. a test client's portal)
    server_handler = signal.getsignal(signal.SIGTERM)
    if not callable(server_handler):
        return False
    loop = asyncio.get_running_loop()
    state = {"started": False}

    def stop(sig: int, frame: FrameType | None) -> None:
        server_handler(sig, frame)

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        if state["started"]:
            stop(sig, frame)
            return
        state["started"] = True
        on_drain()
        log.info("SIGTERM: readiness off, serving for %.1fs before shutdown", seconds)
        loop.call_soon_threadsafe(loop.call_later, seconds, stop, sig, None)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True
