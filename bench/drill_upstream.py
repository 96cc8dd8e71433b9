"""The drill's provider: SendGrid and Twilio answers, every message it took written down.

Run as ``python -m bench.drill_upstream PORT LOG``. Each message it accepts is
one JSON line in LOG (``{"token", "path", "at"}``; the token is the drill's
mark in the subject or body). ``POST /_drill/mode`` with ``{"mode": …}``
switches how it answers:

- ``ok``: 202 (SendGrid) / 201 (Twilio), the message taken;
- ``503``: 503, nothing taken;
- ``timeout``: the message taken, the answer held for ``HOLD`` seconds (past
  the guard's read timeout), so the guard cannot know it went;
- ``drop``: the request read, the connection closed without an answer, nothing taken.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

HOLD = 32.0
TOKEN = re.compile(r"drill-[0-9a-z-]+")


class Drill(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    mode = "ok"
    log = None
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_drill/mode":
            Drill.mode = json.loads(body)["mode"]
            return self._answer(200, b"{}")
        mode = Drill.mode
        if mode == "503":
            return self._answer(503, b'{"errors": [{"message": "drill: unavailable"}]}')
        if mode == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._take(body)
        if mode == "timeout":
            time.sleep(HOLD)
        if self.path.startswith("/2010-04-01/"):
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            sid = "SM" + uuid.uuid4().hex
            answer = {"sid": sid, "account_sid": self.path.split("/")[3], "to": form.get("To"),
                      "from": form.get("From"), "body": form.get("Body"), "status": "queued",
                      "api_version": "2010-04-01", "direction": "outbound-api",
                      "uri": f"{self.path[:-5]}/{sid}.json"}
            return self._answer(201, json.dumps(answer).encode())
        self._answer(202, b"")

    def _take(self, body: bytes) -> None:
        found = TOKEN.search(body.decode(errors="replace"))
        line = {"token": found.group(0) if found else None, "path": self.path,
                "at": time.time()}
        with Drill.lock:
            Drill.log.write(json.dumps(line) + "\n")
            Drill.log.flush()

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Message-Id", "drill")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(200, json.dumps({"mode": Drill.mode}).encode())

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    """Serve on 127.0.0.1 at PORT, writing what it takes to LOG."""
    Drill.log = open(sys.argv[2], "a")  # noqa: SIM115 - open while serving
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Drill)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
