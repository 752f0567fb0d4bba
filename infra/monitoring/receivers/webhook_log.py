"""Alertmanager's webhook receiver in this cluster: logs and keeps every notification.

POST /alerts  Alertmanager's webhook payload; stored in memory with the time it
              arrived and written to stdout as one JSON line (so every
              notification is also searchable in VictoriaLogs).
GET  /alerts  every notification since the receiver started, as a JSON list
              (the acceptance suite reads it through the API server's proxy).
A team replaces or complements it with its pager or chat bridge in
config/alertmanager.yml.
"""

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECEIVED: list[dict[str, object]] = []
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length", "0"))
        try:
            payload = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        with LOCK:
            RECEIVED.append({"received_at": time.time(), "payload": payload})
        print(
            json.dumps({"status": payload.get("status"), "alerts": len(payload.get("alerts", []))}),
            flush=True,
        )
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/healthz":
            body = b"ok"
        else:
            with LOCK:
                body = json.dumps(RECEIVED).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


def main() -> None:
    server = ThreadingHTTPServer(("", int(os.environ.get("PORT", "9095"))), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


if __name__ == "__main__":
    main()
