"""Start and stop the processes the HTTP benchmarks talk to: the guard under gunicorn, an upstream.

Everything listens on 127.0.0.1 only and is stopped (by its own process id)
when the benchmark is done.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from bench.figure import NotMeasured
from bench.loader import replicate, store, template_store
from bench.population import EPOCH

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def process(args: list[str], url: str, env: dict | None = None, log: Path | None = None
            ) -> Iterator[subprocess.Popen]:
    """Run a server process until ``url`` answers; stop it afterwards."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                tail = log.read_text()[-600:] if log else ""
                raise NotMeasured(f"{Path(args[0]).name} exited at start-up: {tail.strip()}")
            try:
                requests.get(url, timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise NotMeasured(f"{url} did not answer within 30 s") from None
                time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()


@contextmanager
def upstream() -> Iterator[str]:
    """Run the SendGrid stand-in; yield its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, "-m", "bench.upstream", str(port)], url + "/"):
        yield url


@contextmanager
def guard_server(people: int, upstream_url: str, policy, backend: str = "sqlite"
                 ) -> Iterator[tuple[str, str]]:
    """Run the guard under gunicorn on a store of ``people``; yield (URL, API key)."""
    if not Path(sys.executable).with_name("gunicorn").exists():
        raise NotMeasured("gunicorn is not installed in this environment")
    with store(backend) as engine, tempfile.TemporaryDirectory(prefix="bench-serve-") as directory:
        replicate(template_store(policy), engine, people)
        db_url = engine.url.render_as_string(hide_password=False)
        engine.dispose()
        admin = secrets.token_urlsafe(24)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # The Procfile's web process: two workers of eight threads, serving the guard's app
        # with one more route, the HTTP figures' floor (bench/app.py).
        args = [str(Path(sys.executable).with_name("gunicorn")), "--bind", f"127.0.0.1:{port}",
                "--workers", "2", "--threads", "8", "bench.app:create()"]
        env = {"GUARD_DATABASE_URL": db_url, "GUARD_ADMIN_KEY": admin,
               "GUARD_SENDGRID_URL": upstream_url, "GUARD_SENDGRID_API_KEY": "SG.bench",
               "GUARD_FORWARD_ATTEMPTS": "1"}
        with process(args, url + "/healthz", env, Path(directory) / "gunicorn.log"):
            reply = requests.post(f"{url}/v1/keys", timeout=10,
                                  headers={"Authorization": f"Bearer {admin}"},
                                  json={"name": "bench", "scopes": ["check", "send"],
                                        "sender": "oem", "purpose": "newsletter"})
            if reply.status_code != 200 and reply.status_code != 201:
                raise NotMeasured(f"cannot create an API key: {reply.status_code} "
                                  f"{reply.text[:200]}")
            yield url, reply.json()["key"]


def at_epoch(body: dict) -> dict:
    """Pin a check to the population's epoch, so verdicts do not drift with the wall clock."""
    return {**body, "at": body.get("at") or EPOCH.isoformat()}
