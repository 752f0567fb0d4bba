"""Bounded HTTP client run inside a pod: GET a URL every INTERVAL seconds, at most
COUNT times or DURATION seconds, one JSON line per request (time, ok, detail).
A new connection per request, so every request goes through the Service's routing."""

import json
import os
import sys
import time
import urllib.request

from admission import wait_admitted

URL = os.environ["URL"]
INTERVAL = float(os.environ.get("INTERVAL", "0.2"))
COUNT = int(os.environ.get("COUNT", "1500"))
DURATION = float(os.environ.get("DURATION", "300"))
TIMEOUT = float(os.environ.get("TIMEOUT", "2"))
TOKEN = os.environ.get("TOKEN", "")


def main() -> None:
    if os.environ.get("ADMIT"):
        admitted_after = wait_admitted(URL, TOKEN, os.environ["ADMIT"])
        print(json.dumps({"admitted_after_s": round(admitted_after, 1)}), flush=True)
    started = time.time()
    for sequence in range(COUNT):
        if time.time() - started > DURATION:
            break
        sent = time.time()
        try:
            request = urllib.request.Request(URL)
            if TOKEN:
                request.add_header("Authorization", f"Bearer {TOKEN}")
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                ok, detail = response.status == 200, response.read(200).decode(errors="replace")
        except Exception as error:  # noqa: BLE001 - every failure is data here
            ok, detail = False, f"{type(error).__name__}: {error}"
        elapsed_ms = round((time.time() - sent) * 1000, 1)
        line = {"seq": sequence, "t": sent, "ok": ok, "ms": elapsed_ms, "detail": detail}
        print(json.dumps(line), flush=True)
        time.sleep(max(0.0, INTERVAL - (time.time() - sent)))
    print(json.dumps({"done": True}), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
