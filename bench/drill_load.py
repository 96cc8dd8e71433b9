"""One load process of the drill: real SendGrid and Twilio clients and /v1/check, recorded.

Each process sends until its deadline, round-robin over the web processes,
and writes one JSON line per request: when, what, to which web process, its
mark (``drill-…``), and how it ended (``ok``, ``blocked``, ``http_<status>``,
``error``).
"""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import requests

TWILIO_SID = "AC" + "d" * 32
TIMEOUT = 10.0


def sendgrid_client(base: str, key: str):
    from sendgrid import SendGridAPIClient

    client = SendGridAPIClient(api_key=key, host=base)
    client.client.timeout = TIMEOUT
    return client


def twilio_client(base: str, key: str):
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    class ToGuard(TwilioHttpClient):
        def request(self, method, url, *args, **kwargs):
            return super().request(method, url.replace("https://api.twilio.com", base),
                                   *args, **kwargs)

    return Client(TWILIO_SID, key, http_client=ToGuard(timeout=TIMEOUT))


def mail(to: str, token: str, purpose: str) -> dict:
    return {"personalizations": [{"to": [{"email": to}]}],
            "from": {"email": "service@drill.example"}, "subject": f"Notice {token}",
            "content": [{"type": "text/plain", "value": f"Hello ({token})"}],
            "custom_args": {"guard_purpose": purpose, "guard_sender": "oem"}}


def run(name: str, webs: list[str], key: str, people: int, capped: int, deadline: float,
        out: str, threads: int = 2) -> None:
    """Send until ``deadline`` (wall clock) from ``threads`` threads; write records to ``out``."""
    lock = threading.Lock()
    path = Path(out)
    sink = path.open("a")

    def record(**fields) -> None:
        with lock:
            sink.write(json.dumps({"t": time.time(), **fields}) + "\n")

    def loop(thread: int) -> None:
        from python_http_client.exceptions import HTTPError
        from twilio.base.exceptions import TwilioRestException

        rng = random.Random(f"{name}-{thread}")
        grids = [sendgrid_client(w, key) for w in webs]
        twilios = [twilio_client(w, key) for w in webs]
        session = requests.Session()
        n = 0
        while time.time() < deadline:
            n += 1
            web = n % len(webs)
            op = ("mail", "newsletter", "sms", "check")[n % 4]
            token = f"drill-{name}-{thread}-{n}"
            try:
                if op in ("mail", "newsletter"):
                    to = (f"a{rng.randrange(people)}@drill.example" if op == "mail"
                          else f"c{rng.randrange(capped)}@drill.example")
                    purpose = "transactional" if op == "mail" else "newsletter"
                    try:
                        answer = grids[web].client.mail.send.post(
                            request_body=mail(to, token, purpose))
                        blocked = int(answer.headers.get("X-Guard-Blocked") or 0)
                        result = "blocked" if blocked else "ok"
                    except HTTPError as exc:
                        result = f"http_{exc.status_code}"
                elif op == "sms":
                    to = f"+49151{rng.randrange(people):08d}"
                    try:
                        twilios[web].messages.create(to=to, from_="+15550000000",
                                                     body=f"Your order {token}")
                        result = "ok"
                    except TwilioRestException as exc:
                        result = "blocked" if exc.code == 21610 else f"http_{exc.status}"
                else:
                    answer = session.post(
                        webs[web] + "/v1/check", timeout=TIMEOUT,
                        headers={"Authorization": f"Bearer {key}"},
                        json={"channel": "email", "to": f"c{rng.randrange(capped)}@drill.example",
                              "purpose": "newsletter", "sender": "oem"})
                    result = (answer.json()["verdict"] if answer.status_code == 200
                              else f"http_{answer.status_code}")
            except Exception as exc:  # a refused, reset or timed-out connection: recorded
                result, token = "error", f"{token} {exc.__class__.__name__}"
            record(op=op, web=web, token=token.split()[0], result=result)
            if result == "error":
                time.sleep(0.05)

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    sink.close()
