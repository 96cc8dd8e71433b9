"""A local stand-in for SendGrid and Twilio: a real HTTP server that records what it receives."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@dataclass
class Received:
    """One request as the provider saw it."""

    method: str
    path: str
    headers: dict
    body: bytes
    answered: int | None = None

    def json(self):
        return json.loads(self.body)

    def form(self) -> dict:
        return {k: v[0] if len(v) == 1 else v for k, v in parse_qs(self.body.decode()).items()}


def twilio_resource(path: str, form: dict) -> dict:
    """Build the JSON Twilio answers for a created message or call."""
    sid_hex = uuid.uuid4().hex
    account = path.split("/")[3]
    if path.endswith("/Calls.json"):
        sid = "CA" + sid_hex
        return {"sid": sid, "account_sid": account, "to": form.get("To"), "from": form.get("From"),
                "status": "queued", "api_version": "2010-04-01", "direction": "outbound-api",
                "uri": f"/2010-04-01/Accounts/{account}/Calls/{sid}.json"}
    sid = "SM" + sid_hex
    return {"sid": sid, "account_sid": account, "to": form.get("To"), "from": form.get("From"),
            "body": form.get("Body"), "status": "queued", "api_version": "2010-04-01",
            "direction": "outbound-api", "num_segments": "1", "num_media": "0",
            "date_created": "Mon, 23 Nov 2026 10:00:00 +0000",
            "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json"}


@dataclass
class Upstream:
    """Answers from ``script`` in order (status, headers, body), then the provider's success."""

    script: list = field(default_factory=list)
    received: list = field(default_factory=list)
    # From request number ``hold_from`` on, keep requests open until ``release`` is set, and
    # signal ``holding`` (crash tests kill the sender while the provider has its request).
    hold_from: int | None = None
    release: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)
    delay: float = 0.0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ, start_response):
        request = Request(environ)
        got = Received(request.method, request.path, dict(request.headers), request.get_data())
        with self.lock:
            self.received.append(got)
            number = len(self.received)
            step = self.script.pop(0) if self.script else None
        if self.hold_from is not None and number >= self.hold_from:
            self.holding.set()
            self.release.wait(60)
        if self.delay:
            time.sleep(self.delay)
        if step is None:
            step = self.success(got)
        status, headers, body = step
        got.answered = status
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers = {"Content-Type": "application/json", **headers}
        return Response(body, status=status, headers=headers)(environ, start_response)

    def success(self, got: Received):
        if got.path.startswith("/2010-04-01/"):
            return 201, {}, twilio_resource(got.path, got.form())
        return 202, {}, b""

    def paths(self) -> list[str]:
        return [r.path for r in self.received]


class Serving:
    """Run a WSGI app on 127.0.0.1 in a thread."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
