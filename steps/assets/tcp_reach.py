"""Which TCP services this pod can open (run inside a probe pod, as a workload's identity).

argv[1]: JSON {"control": {"host", "port"}, "targets": [{"name", "host", "port"}],
"retry_s": optional}. Waits up to 60 s until the control opens (a new pod's NetworkPolicy
admission), then resolves each target's name first (so a DNS failure is never mistaken for
isolation) and tries to connect; with "retry_s" (targets expected open) a target is tried
again until it opens or that many seconds have passed since the first try, since each node
admits a new pod on its own.
Prints {"admitted_s", "results": [{"name", "resolved", "connected", "error"}]}.
"""

import json
import socket
import sys
import time
from typing import Any


def connect(host: str, port: int, timeout: float = 3.0) -> str:
    """'' on success, else the error."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ""
    except OSError as error:
        return f"{type(error).__name__}: {error}"


def main() -> None:
    plan = json.loads(sys.argv[1])
    control = plan["control"]
    started = time.monotonic()
    while connect(control["host"], control["port"]):
        if time.monotonic() - started > 60:
            raise SystemExit(f"control {control} never reachable")
        time.sleep(0.5)
    admitted = round(time.monotonic() - started, 2)
    results: list[dict[str, Any]] = []
    for target in plan["targets"]:
        try:
            address = socket.gethostbyname(target["host"])
        except OSError as error:
            results.append(
                {"name": target["name"], "resolved": "", "connected": False, "error": str(error)}
            )
            continue
        first = time.monotonic()
        problem = connect(address, target["port"])
        while problem and time.monotonic() - first < plan.get("retry_s", 0):
            time.sleep(0.5)
            problem = connect(address, target["port"])
        results.append(
            {
                "name": target["name"],
                "resolved": address,
                "connected": not problem,
                "error": problem,
            }
        )
    print(json.dumps({"admitted_s": admitted, "results": results}))


if __name__ == "__main__":
    main()
