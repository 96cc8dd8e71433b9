"""Screen figures: ``guard screen`` on a list of recipients, per core, against bare ``decide()``.

The list is a CSV of email addresses spread over the whole population (one in
fifty matches nobody, as on a bought list), screened as a dry run with one
newsletter attempt template, the way a marketer scrubs a list before a
campaign. The command runs as its own process, as a user runs it, so its wall
time includes start-up and writing the annotated CSV. It spreads a long list
over one worker process per core; its peak memory is the most the whole
process tree (the command and its workers together) held at once, sampled
from /proc every 50 ms.

The floor is ``policies.decide`` on one core over the same recipients' own
profiles and ledgers (read from the same store beforehand, untimed) with the
same attempt: the figure is the command's recipients/s per core it uses ÷
those decisions/s, round by round in turns.
"""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.figure import Figure, NotMeasured, Spread, Target, ratio_figure, rounds, timed
from bench.loader import replicate, store, template_store
from bench.population import EPOCH, email_of

FIGURES = {
    "screen_decide_ratio": ("×", Target(">=", 0.5)),
    "screen_peak_memory_mib": ("MiB", Target("<=", 1024)),
}
ROOT = Path(__file__).resolve().parent.parent
ATTEMPT = ("--channel", "email", "--purpose", "newsletter", "--sender", "oem",
           "--template", "tmpl-7", "--at", EPOCH.isoformat())
DECIDE_SAMPLE = 20_000  # recipients whose profiles the floor decides on, at most


def measure(size) -> list[Figure]:
    """Screen ``screen_recipients`` addresses against ``screen_people`` people, per round."""
    from policies import default_policy_path, load_policy

    policy = load_policy(default_policy_path())
    people, count = size.screen_people, size.screen_recipients
    with store("sqlite") as engine, tempfile.TemporaryDirectory(prefix="bench-screen-") as tmp:
        start = time.perf_counter()
        replicate(template_store(policy), engine, people)
        load_s = time.perf_counter() - start
        database = engine.url.render_as_string(hide_password=False)
        recipients = Path(tmp) / "recipients.csv"
        addresses = write_list(recipients, count, people)
        floor = BareDecide(engine, policy, addresses[:DECIDE_SAMPLE])
        engine.dispose()
        out = Path(tmp) / "screened.csv"
        runs, decide_s = rounds([lambda: run_screen(recipients, out, database),
                                 timed(floor.run)], size.rounds)
        rows, verdicts = read_result(out)
    if rows != count:
        raise NotMeasured(f"guard screen wrote {rows} rows for {count} recipients: "
                          f"{runs[-1][3][-300:]}")
    cores = workers(count)
    per_core = [count / r[0] / cores for r in runs]
    decide_rate = [len(floor.inputs) / t for t in decide_s]
    peak = max(r[1] for r in runs)
    params = {"recipients": count, "people": people, "store": "sqlite", "commit": False,
              "attempt": " ".join(ATTEMPT), "rounds": size.rounds, "verdicts": verdicts,
              "store_load_s": round(load_s, 1), "workers": cores,
              "largest_process_mib": round(max(r[2] for r in runs) / 1024),
              "decided_by_floor": len(floor.inputs),
              # getrusage would say more: Linux keeps the fork's pre-exec high-water mark,
              # which is this benchmark's own memory (the 1M-person loader), not guard's.
              "command": "guard screen recipients.csv … -o screened.csv (its own process)"}
    return [
        ratio_figure(
            "screen_decide_ratio", FIGURES["screen_decide_ratio"],
            [a / b for a, b in zip(per_core, decide_rate, strict=True)],
            floor="policies.decide on one core, in memory, over the same recipients' "
                  "profiles and ledgers with the same attempt, taking turns round by round",
            absolute={"recipients_per_s": Spread.of([count / r[0] for r in runs], "per s", 0),
                      "recipients_per_s_per_core": Spread.of(per_core, "per s", 0),
                      "decide_per_s": Spread.of(decide_rate, "per s", 0)},
            params=params,
            note="wall time of the whole command: start-up, reading the CSV, screening, "
                 "recording the dry-run decisions, writing the annotated CSV"),
        Figure("screen_peak_memory_mib", *FIGURES["screen_peak_memory_mib"],
               value=round(peak / 1024), params=params,
               note="peak of the summed resident set sizes of guard screen and its worker "
                    "processes, sampled every 50 ms, the largest of the rounds"),
    ]


class BareDecide:
    """The recipients' profiles and ledgers, read once; ``run`` decides the attempt for each."""

    def __init__(self, engine, policy, addresses: list[str]):
        from guard.checks.attempts import read_attempt, read_template
        from guard.checks.facts import read_facts
        from guard.store.engine import read_only

        self.policy = policy
        template = read_template(policy, {k.lstrip("-"): v for k, v in zip(
            ATTEMPT[::2], ATTEMPT[1::2], strict=True)}, None)
        since = EPOCH - policy.ledger_window
        self.inputs = []
        with read_only(engine.connect()) as conn:
            for i in range(0, len(addresses), 500):
                tried = [read_attempt(policy, template, a, EPOCH) for a in addresses[i:i + 500]]
                facts = read_facts(conn, [t for t, _ in tried], since=since,
                                   campaign_ids=[None], erasure_key=None)
                for target, attempt in tried:
                    profile, entries = facts.profile_of(target)
                    if profile is None:
                        profile = facts.stranger(target)
                    self.inputs.append((attempt, profile, [e for e in entries if e.at >= since]))

    def run(self) -> None:
        from policies import decide

        policy = self.policy
        for attempt, profile, entries in self.inputs:
            decide(attempt, profile, entries, policy, EPOCH, {})


def workers(count: int) -> int:
    """Return how many processes ``guard screen`` uses for a list of ``count`` rows."""
    from guard.cli.screen import PARALLEL_FROM

    return (os.cpu_count() or 1) if count >= PARALLEL_FROM else 1


def write_list(path: Path, count: int, people: int, seed: int = 13) -> list[str]:
    """Write a CSV of ``count`` recipients spread over ``people`` (2 % strangers); return them."""
    rnd = random.Random(seed)
    addresses = []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["to", "first_name"])
        for n in range(count):
            i = rnd.randrange(people) if rnd.random() >= 0.02 else people + rnd.randrange(10**6)
            addresses.append(email_of(i))
            writer.writerow([addresses[-1], f"Reader {n}"])
    return addresses


def run_screen(recipients: Path, out: Path, database: str) -> tuple[float, int, int, str]:
    """Run ``guard screen``; return its wall time, peak tree and process RSS in KiB, stderr."""
    guard = Path(sys.executable).with_name("guard")
    if not guard.exists():
        raise NotMeasured("the guard command is not installed in this environment")
    env = {**os.environ, "GUARD_DATABASE_URL": database}
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([str(guard), "screen", str(recipients), *ATTEMPT, "--dry-run",
                                 "-o", str(out)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        peak = _TreeMemory(proc.pid)
        peak.start()
        _, status, _ = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        peak.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise NotMeasured(f"guard screen exited with {proc.returncode}: {stderr[-300:]}")
    return seconds, peak.kib, peak.largest_kib, stderr


class _TreeMemory(threading.Thread):
    """Sample the summed resident memory of a process and all its descendants."""

    def __init__(self, pid: int, every: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.every, self.kib, self.largest_kib = pid, every, 0, 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.every):
            sizes = [_rss_kib(p) for p in _tree(self.pid)]
            self.kib = max(self.kib, sum(sizes))
            self.largest_kib = max(self.largest_kib, *sizes)

    def stop(self) -> None:
        self._done.set()
        self.join()


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo.extend(int(c) for c in handle.read().split())
        except OSError:
            continue  # gone meanwhile
    return found


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass  # the process ended between listing and reading: it holds nothing now
    return 0


def read_result(path: Path) -> tuple[int, dict[str, int]]:
    """Count the screened rows and their verdicts."""
    verdicts: dict[str, int] = {}
    rows = 0
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows += 1
            key = row["verdict"] or "invalid"
            verdicts[key] = verdicts.get(key, 0) + 1
    return rows, dict(sorted(verdicts.items()))
