"""Send a list of requests from inside the cluster and report each status (run in a probe pod).

argv[1] or env PLAN: JSON {"base": URL, "requests": [{"id", "method", "path", "token",
"body"}], "stop_at": optional status that ends the run, "admit": optional URL to wait for
first (a new pod's NetworkPolicy admission)}. Prints {"results": [...]} as one JSON line.
"""

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any


def send(base: str, item: dict[str, Any]) -> dict[str, Any]:
    data = json.dumps(item["body"]).encode() if item.get("body") is not None else None
    request = urllib.request.Request(base + item["path"], data=data, method=item["method"])
    if item.get("token"):
        request.add_header("Authorization", "Bearer " + item["token"])
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, body = response.status, response.read(2000)
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read(2000)
    except Exception as error:  # noqa: BLE001 - a connection failure is a result here
        return {"id": item["id"], "status": 0, "json_error": False, "detail": str(error)}
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    json_error = isinstance(parsed, dict) and "error" in parsed
    return {"id": item["id"], "status": status, "json_error": json_error}


def main() -> None:
    plan = json.loads(sys.argv[1] if len(sys.argv) > 1 else os.environ["PLAN"])
    if plan.get("admit"):
        from admission import wait_admitted

        wait_admitted(plan["admit"], addresses=plan.get("admit_addresses", ""))
    results = []
    for item in plan["requests"]:
        result = send(plan["base"], item)
        results.append(result)
        if plan.get("stop_at") and result["status"] == plan["stop_at"]:
            break
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
