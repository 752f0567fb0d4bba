"""The one way to wait: poll a predicate until a deadline, report the time it took."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The deadline passed; the message says what was awaited and what was last seen."""


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 1.0,
    describe: str,
) -> tuple[T, float]:
    """Call ``predicate`` until it returns a truthy value; return it and the seconds taken.

    Exceptions from the predicate count as "not yet" and the last one is
    reported on timeout, so a flaky API call does not end the wait early.
    """
    __tracebackhide__ = True
    started = time.monotonic()
    last_seen: list[str] = ["nothing yet"]

    def attempt() -> T | None:
        try:
            value = predicate()
        except Exception as error:  # noqa: BLE001 - reported on timeout
            last_seen[0] = f"{type(error).__name__}: {error}"
            return None
        if not value:
            last_seen[0] = repr(value)
        return value

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry=retry_if_result(lambda value: not value),
    )
    try:
        value = retrying(attempt)
    except RetryError:
        raise WaitTimeout(
            f"timed out after {timeout:.0f}s waiting for {describe}; last seen: {last_seen[0]}"
        ) from None
    assert value is not None
    return value, time.monotonic() - started
