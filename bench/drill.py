"""The whole-system fault drill: ``python -m bench.drill [--out FILE]`` (about three minutes).

On loopback only, it starts a private PostgreSQL (initdb on a free port), two
gunicorn web processes (the Procfile's settings), two ``guard worker``
processes and a recording provider (``bench/drill_upstream.py``); drives load
from three processes through the real ``sendgrid`` and ``twilio`` clients and
``/v1/check`` against people the shipped frequency cap limits (4 marketing
contacts in 30 days); and meanwhile:

1. SIGKILLs a web process's gunicorn worker (its master starts another),
2. SIGKILLs a ``guard worker`` and starts it again,
3. stops PostgreSQL at once (``pg_ctl stop -m immediate``) and starts it again,
4. has the provider answer 503, then drop connections, then hold its answers
   past the guard's read timeout.

Then it lets the workers settle the outbox and counts: messages accepted vs
delivered (lost must be 0), duplicates at the provider (0; rows left
``unknown`` for a human counted apart), people contacted past the cap (0),
5xx answers and connection errors during each fault, and the seconds to
recover from each. Results go to ``bench/drill.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import requests
import sqlalchemy as sa

from bench import drill_load
from bench.serving import free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("drill.json")
BIN = Path(sys.executable).parent
PEOPLE, CAPPED, LOADERS = 200, 10, 3
CAP = 4  # the shipped policy: at most 4 marketing and sales contacts in 30 days
# Seconds from the start of the load: (fault, start, end). An upstream fault ends when the
# provider answers normally again; a kill or a stop ends when the process is started again.
PLAN = [("web SIGKILL", 8, 8), ("worker SIGKILL", 18, 21), ("database restart", 28, 32),
        ("upstream 503", 40, 48), ("upstream drops", 52, 58), ("upstream timeouts", 62, 66)]
LOAD_SECONDS = 100
SETTLE_SECONDS = 45
GRACE = 1.0  # a request that started just before a fault ended may fail just after


def postgres_bin() -> Path:
    """Return the newest PostgreSQL server binaries' folder."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not found and shutil.which("initdb"):
        return Path(shutil.which("initdb")).parent
    if not found:
        raise SystemExit("drill: no PostgreSQL binaries (initdb) found")
    return Path(found[-1])


class Postgres:
    """A private PostgreSQL cluster in ``folder`` on ``port``, stopped and started at will."""

    def __init__(self, folder: Path, port: int):
        self.bin, self.folder, self.port = postgres_bin(), folder, port
        self.data = folder / "data"
        # PostgreSQL refuses to run as root: then it runs as the postgres user.
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *args: str, check: bool = True) -> None:
        subprocess.run([*self.prefix, str(self.bin / args[0]), *args[1:]], check=check,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.prefix:
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
                   f"{self.folder} -c max_connections=200 -c fsync=off")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                  str(self.folder / "postgres.log"), "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast", check: bool = True) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=check)


class Processes:
    """The drill's server processes; each stopped by its own id at the end."""

    def __init__(self, folder: Path, env: dict[str, str]):
        self.folder, self.env, self.running = folder, env, []

    def start(self, name: str, args: list[str], extra: dict | None = None) -> subprocess.Popen:
        log = (self.folder / f"{name}.log").open("ab")
        process = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **self.env, **(extra or {})},
                                   stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.running.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def children(pid: int) -> list[int]:
    """Return the ids of ``pid``'s child processes (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def wait_ready(url: str, timeout: float = 60) -> float:
    """Wait until ``url``/readyz answers 200; return when it did (wall clock)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return time.time()
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise SystemExit(f"drill: {url} not ready within {timeout} s")


def mode(upstream: str, name: str) -> None:
    requests.post(upstream + "/_drill/mode", json={"mode": name}, timeout=5)


def people_events(timezone: str) -> list[dict]:
    """Return the drill's people: PEOPLE with e-mail and phone, CAPPED with e-mail only."""
    events = [{"type": "person", "source": {"system": "drill", "id": f"a{i}"},
               "emails": [f"a{i}@drill.example"], "phones": [f"+49151{i:08d}"],
               "timezone": timezone} for i in range(PEOPLE)]
    events += [{"type": "person", "source": {"system": "drill", "id": f"c{i}"},
                "emails": [f"c{i}@drill.example"], "timezone": timezone}
               for i in range(CAPPED)]
    return events


def midday_zone() -> str:
    """Return a fixed-offset zone where it is about noon now, so contact hours are open."""
    offset = 12 - time.gmtime().tm_hour
    offset = offset - 24 if offset > 14 else offset + 24 if offset < -12 else offset
    # POSIX sign: Etc/GMT-5 is five hours ahead of UTC.
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")


def outbox_backlog(engine: sa.Engine) -> int:
    """Count rows due to be sent, claimed or sending right now (PostgreSQL's clock)."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT count(*) FROM outbox WHERE status IN ('claimed', 'sending') "
            "OR (status = 'held' AND not_before <= now())")).scalar()


def drill(out: Path, keep: bool = False) -> dict:
    """Run the drill; return its results."""
    folder = Path(tempfile.mkdtemp(prefix="guard-drill-"))
    if os.geteuid() == 0:
        os.chmod(folder, 0o755)
    admin = secrets.token_urlsafe(32)
    pg = Postgres(folder / "pg", free_port())
    upstream_port = free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    env = {"GUARD_DATABASE_URL": pg.url, "GUARD_ADMIN_KEY": admin,
           "GUARD_ERASURE_SALT": secrets.token_hex(32),
           "GUARD_SENDGRID_URL": upstream, "GUARD_SENDGRID_API_KEY": "SG.drill",
           "GUARD_TWILIO_URL": upstream, "GUARD_TWILIO_ACCOUNT_SID": "AC" + "e" * 32,
           "GUARD_TWILIO_AUTH_TOKEN": "drill", "GUARD_OUTBOX_LEASE_SECONDS": "5",
           "GUARD_OUTBOX_RETRY_SECONDS": "1", "GUARD_FORWARD_ATTEMPTS": "2",
           "GUARD_FORWARD_WAIT": "0.2", "GUARD_FORWARD_WAIT_MAX": "0.5",
           "GUARD_LOG_LEVEL": "WARNING", "GUARD_CONFIG": ""}
    procs = Processes(folder, env)
    timeline: list[dict] = []
    backlog: list[tuple[float, int]] = []
    engine = None
    with ExitStack() as stack:
        if keep:
            print(f"drill folder: {folder}", file=sys.stderr)
        else:
            stack.callback(shutil.rmtree, folder, True)
        pg.init()
        pg.start()
        stack.callback(lambda: pg.stop("immediate", check=False))
        stack.callback(procs.stop_all)
        subprocess.run([str(BIN / "guard"), "db", "upgrade"], check=True, cwd=ROOT,
                       env={**os.environ, **env}, stdout=subprocess.DEVNULL)
        upstream_log = folder / "upstream.jsonl"
        procs.start("upstream", [sys.executable, "-m", "bench.drill_upstream",
                                 str(upstream_port), str(upstream_log)])
        webs, masters = [], []
        for index in range(2):
            port = free_port()
            metrics_dir = folder / f"metrics-{index}"
            masters.append(procs.start(f"web{index}", [
                str(BIN / "gunicorn"), "-c", "python:guard.ops.gunicorn", "--bind",
                f"127.0.0.1:{port}", "--workers", "1", "--threads", "8", "guard:create_app()"],
                {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}))
            webs.append(f"http://127.0.0.1:{port}")
        for web in webs:
            wait_ready(web)
        worker_args = [str(BIN / "guard"), "worker", "--interval", "0.2"]
        workers = [procs.start(f"worker{i}", worker_args) for i in range(2)]
        auth = {"Authorization": f"Bearer {admin}"}
        loaded = requests.post(webs[0] + "/v1/events", headers=auth, timeout=60,
                               json={"events": people_events(midday_zone())}).json()
        assert not loaded["rejected"], loaded["rejected"][:3]
        key = requests.post(webs[0] + "/v1/keys", headers=auth, timeout=10, json={
            "name": "drill", "scopes": ["check", "send"], "sender": "oem",
            "purpose": "transactional"}).json()["key"]
        engine = sa.create_engine(pg.url, pool_pre_ping=True)

        start = time.time()
        deadline = start + LOAD_SECONDS
        context = multiprocessing.get_context("spawn")
        loaders = [context.Process(target=drill_load.run, args=(
            f"p{i}", webs, key, PEOPLE, CAPPED, deadline, str(folder / f"load{i}.jsonl")))
            for i in range(LOADERS)]
        for loader in loaders:
            loader.start()

        def at(second: float) -> None:
            while time.time() < start + second:
                sample()
                time.sleep(0.2)

        def sample() -> None:
            try:
                backlog.append((time.time(), outbox_backlog(engine)))
            except sa.exc.SQLAlchemyError:
                backlog.append((time.time(), -1))

        def note(fault: str, began: float, ended: float, **extra) -> None:
            timeline.append({"fault": fault, "start": began, "end": ended, **extra})

        # 1. A web process's gunicorn worker dies; its master starts another.
        at(PLAN[0][1])
        [child] = children(masters[0].pid)
        began = time.time()
        os.kill(child, signal.SIGKILL)
        note("web SIGKILL", began, began, back=wait_ready(webs[0]))
        # 2. A guard worker dies mid-cycle and is started again.
        at(PLAN[1][1])
        began = time.time()
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(10)
        at(PLAN[1][2])
        workers[0] = procs.start("worker0-again", worker_args)
        note("worker SIGKILL", began, time.time())
        # 3. The database stops at once (as in a crash) and comes back.
        at(PLAN[2][1])
        began = time.time()
        pg.stop("immediate")
        at(PLAN[2][2])
        pg.start()
        ended = time.time()
        note("database restart", began, ended, back=max(wait_ready(w) for w in webs))
        # 4. The provider fails three ways, one after the other.
        for (fault, first, last), name in zip(PLAN[3:], ("503", "drop", "timeout"),
                                              strict=True):
            at(first)
            began = time.time()
            mode(upstream, name)
            at(last)
            mode(upstream, "ok")
            note(fault, began, time.time())
        at(LOAD_SECONDS)
        for loader in loaders:
            loader.join(30)
        # Settle: held answers come back, leases run out, retries go out.
        settle_until = time.time() + SETTLE_SECONDS
        time.sleep(drill_upstream_hold_left(timeline))
        while time.time() < settle_until:
            sample()
            if backlog[-1][1] == 0:
                break
            time.sleep(0.5)
        results = account(engine, folder, upstream_log, timeline, backlog, start)
        engine.dispose()
    results["seconds"] = round(time.time() - start, 1)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return results


def drill_upstream_hold_left(timeline: list[dict]) -> float:
    """Seconds until the last answer the provider holds is given."""
    from bench.drill_upstream import HOLD

    last = timeline[-1]["end"] + HOLD + 1
    return max(0.0, last - time.time())


def account(engine: sa.Engine, folder: Path, upstream_log: Path, timeline: list[dict],
            backlog: list[tuple[float, int]], start: float) -> dict:
    """Count what was accepted, delivered, lost, duplicated, capped; per fault, 5xx and recovery."""
    records = [json.loads(line) for i in range(LOADERS)
               for line in (folder / f"load{i}.jsonl").read_text().splitlines()]
    taken = Counter(json.loads(line)["token"] for line in upstream_log.read_text().splitlines())
    sends = [r for r in records if r["op"] != "check"]
    accepted = {r["token"] for r in sends if r["result"] == "ok"}
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT status, payload, not_before > now(), tries > 0 FROM outbox"))
        status_of: dict[str, tuple[str, bool, bool]] = {}
        for status, payload, later, tried in rows:
            found = drill_token(json.dumps(payload))
            if found:
                status_of[found] = (status, bool(later), bool(tried))
        at_end = conn.execute(sa.text(
            "SELECT status, CASE WHEN not_before > now() THEN 'later' ELSE 'due' END, "
            "tries > 0, count(*) FROM outbox GROUP BY 1, 2, 3")).all()
        over_cap = conn.execute(sa.text(
            "SELECT count(*) FROM (SELECT person_id FROM ledger WHERE committed AND "
            "verdict = 'allow' AND purpose = 'newsletter' AND at > now() - interval '30 days' "
            "GROUP BY person_id HAVING count(*) > :cap) AS over"), {"cap": CAP}).scalar()
        capped_allowed = conn.execute(sa.text(
            "SELECT count(*) FROM ledger WHERE committed AND verdict = 'allow' "
            "AND purpose = 'newsletter'")).scalar()
    delivered = {t for t in accepted if taken.get(t)}
    outcome: Counter = Counter()
    for token in accepted - delivered:
        status, later, tried = status_of.get(token, ("missing", False, False))
        if status == "held" and later:
            outcome["waiting to retry" if tried else "deferred by the policy"] += 1
        elif status in ("held", "claimed", "sending"):
            outcome[f"still in the outbox ({status})"] += 1
        elif status in ("unknown", "dropped"):
            outcome[status] += 1
        else:
            # No row, or a row the guard thinks went out that the provider never took.
            outcome[f"lost ({status})"] += 1
    unknown_rows = [t for t, (s, _, _) in status_of.items() if s == "unknown"]
    results = {
        "requests": len(records),
        "sends_accepted": len(accepted),
        "delivered": len(delivered),
        "lost": sum(n for k, n in outcome.items() if k.startswith("lost")),
        "not_delivered": dict(outcome),
        "duplicates_at_provider": sum(n - 1 for t, n in taken.items() if t and n > 1),
        "unknown_rows": len(unknown_rows),
        "unknown_rows_that_reached_the_provider": sum(1 for t in unknown_rows if taken.get(t)),
        "delivered_without_an_accepting_answer": sum(
            1 for t in taken if t and t not in accepted),
        "people_over_the_cap": over_cap,
        "newsletter_contacts_allowed": capped_allowed,
        "checks": dict(Counter(r["result"] for r in records if r["op"] == "check")),
        "outbox_at_end": {f"{status} {when}{' retried' if tried else ''}": n
                          for status, when, tried, n in at_end},
        "faults": [],
    }
    for index, fault in enumerate(timeline):
        window_end = timeline[index + 1]["start"] if index + 1 < len(timeline) else \
            start + LOAD_SECONDS
        during = [r for r in records if fault["start"] <= r["t"] < window_end]
        failed = [r for r in during if r["result"].startswith("http_5") or r["result"] == "error"]
        last_failure = max((r["t"] for r in failed), default=None)
        # Serving again: the process is back (a kill, a restart) and no caller fails any more.
        ended = fault.get("back", fault["start"] if not failed else fault["end"])
        back = max(ended, last_failure or ended) - fault["start"]
        clear = next((t for t, n in backlog if t >= fault["end"] and n == 0), None)
        results["faults"].append({
            "fault": fault["fault"],
            "seconds": round(fault["end"] - fault["start"], 1),
            "requests": len(during),
            "5xx": sum(1 for r in failed if r["result"].startswith("http_5")),
            "answers": dict(Counter(r["result"] for r in failed)),
            "connection_errors": sum(1 for r in failed if r["result"] == "error"),
            "seconds_to_serve_again": round(max(0.0, back), 1),
            "seconds_to_clear_outbox": round(clear - fault["end"], 1) if clear else None,
        })
    return results


def drill_token(text: str) -> str | None:
    from bench.drill_upstream import TOKEN

    found = TOKEN.search(text)
    return found.group(0) if found else None


def table(results: dict) -> str:
    """Format the results as the README's Markdown table."""
    lines = ["| fault | seconds | requests | 5xx | connection errors | back in (s) | "
             "outbox clear in (s) |", "|---|---|---|---|---|---|---|"]
    for f in results["faults"]:
        lines.append(f"| {f['fault']} | {f['seconds']} | {f['requests']} | {f['5xx']} | "
                     f"{f['connection_errors']} | {f['seconds_to_serve_again']} | "
                     f"{f['seconds_to_clear_outbox']} |")
    lines.append("")
    lines.append(f"Sends accepted {results['sends_accepted']}, delivered "
                 f"{results['delivered']}, lost **{results['lost']}**, duplicates at the "
                 f"provider **{results['duplicates_at_provider']}**, people over the cap "
                 f"**{results['people_over_the_cap']}**; rows left `unknown` "
                 f"{results['unknown_rows']} ({results['unknown_rows_that_reached_the_provider']}"
                 f" of them reached the provider); not delivered: {results['not_delivered']}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the drill, print the table, write the JSON; exit 1 if anything was lost or doubled."""
    parser = argparse.ArgumentParser(prog="python -m bench.drill", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("--keep", action="store_true",
                        help="keep the drill's folder (logs, database files) afterwards")
    args = parser.parse_args(argv)
    results = drill(args.out, keep=args.keep)
    print(table(results))
    print(f"\n{results['seconds']} s of load and settling; results in {args.out}")
    bad = results["lost"] or results["duplicates_at_provider"] or results["people_over_the_cap"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
