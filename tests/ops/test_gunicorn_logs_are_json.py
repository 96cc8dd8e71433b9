"""The web process writes every log line as JSON: the guard's own and gunicorn's."""

from __future__ import annotations

import json
import signal

from guard.store.engine import make_engine
from guard.store.migrate import upgrade
from tests.ops.test_shutdown import gunicorn


def test_gunicorns_own_lines_are_json_beside_the_guards(tmp_path):
    url = f"sqlite:///{tmp_path / 'guard.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    process, _, log = gunicorn(url, "http://127.0.0.1:9", tmp_path)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    gunicorn_lines = [line for line in lines if line["logger"] == "gunicorn.error"]
    assert any("Booting worker" in line["msg"] for line in gunicorn_lines)
    assert any("Shutting down" in line["msg"] for line in gunicorn_lines)
    assert any(line["logger"] == "guard.requests" and line["route"] == "/readyz"
               for line in lines)
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
