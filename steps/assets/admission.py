"""Wait until this new pod may talk to the engine: a NetworkPolicy controller admits a
new pod's IP on each node separately, some seconds after the pod starts, and until a
node has, connections to the pods on it are refused."""

import functools
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable


def wait_admitted(url: str, token: str = "", addresses: str = "", timeout: float = 120.0) -> float:
    """Seconds until every pod in ``addresses`` ("ip:port,...") accepts a connection and
    ``url`` answers with any HTTP status; raise on timeout.

    One answer through the Service proves only the node that served it has admitted us."""
    started = time.monotonic()
    for address in filter(None, addresses.split(",")):
        host, port = address.rsplit(":", 1)
        _retry(functools.partial(_connect, host, int(port)), address, started, timeout)
    _retry(functools.partial(_answer, url, token), url, started, timeout)
    return time.monotonic() - started


def _connect(host: str, port: int) -> None:
    socket.create_connection((host, port), timeout=3).close()


def _answer(url: str, token: str) -> None:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=3):
            return
    except urllib.error.HTTPError:
        return  # an answer: the path is open


def _retry(attempt: Callable[[], None], what: str, started: float, timeout: float) -> None:
    last = "no attempt"
    while time.monotonic() - started < timeout:
        try:
            attempt()
            return
        except OSError as error:
            last = f"{type(error).__name__}: {error}"
        time.sleep(0.5)
    raise SystemExit(f"{what} never answered within {timeout:.0f}s; last: {last}")
