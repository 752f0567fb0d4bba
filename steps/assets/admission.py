"""Wait until this new pod may talk to URL: a NetworkPolicy controller admits a new pod's
IP some seconds after the pod starts, and until then its connections are refused."""

import time
import urllib.error
import urllib.request


def wait_admitted(url: str, token: str = "", timeout: float = 120.0) -> float:
    """Seconds until ``url`` first answered with any HTTP status; raise on timeout."""
    started = time.monotonic()
    last = "no attempt"
    while time.monotonic() - started < timeout:
        request = urllib.request.Request(url)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=3):
                return time.monotonic() - started
        except urllib.error.HTTPError:
            return time.monotonic() - started  # an answer: the path is open
        except OSError as error:
            last = f"{type(error).__name__}: {error}"
        time.sleep(0.5)
    raise SystemExit(f"{url} never answered within {timeout:.0f}s; last: {last}")
