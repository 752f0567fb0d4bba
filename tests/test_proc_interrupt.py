"""An interrupted command is stopped at once (CI cancels jobs with SIGTERM)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from deployer.lower import proc


def test_interrupt_kills_the_running_command_promptly() -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    timer = threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGTERM))
    started = time.monotonic()
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            # Prints a line, then stays silent: the reader thread blocks in read().
            proc.run(["sh", "-c", "echo started; sleep 60"], timeout=120, describe="sleeper")
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
    assert time.monotonic() - started < 10
