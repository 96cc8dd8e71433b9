"""Screen figures: ``guard screen`` on a list of recipients against a populated store.

The list is a CSV of email addresses spread over the whole population (one in
fifty matches nobody, as on a bought list), screened as a dry run with one
newsletter attempt template, the way a marketer scrubs a list before a
campaign. The command runs as its own process, as a user runs it, so its wall
time includes start-up and writing the annotated CSV. It spreads a long list
over one worker process per core; its peak memory is the most the whole
process tree (the command and its workers together) held at once, sampled
from /proc every 50 ms.
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

from bench.figure import Figure, NotMeasured, Target
from bench.loader import replicate, store, template_store
from bench.population import EPOCH, email_of

FIGURES = {
    "screen_recipients_per_s": ("recipients/s", Target(">=", 20_000)),
    "screen_peak_memory_mib": ("MiB", Target("<=", 1024)),
}
ROOT = Path(__file__).resolve().parent.parent
ATTEMPT = ("--channel", "email", "--purpose", "newsletter", "--sender", "oem",
           "--template", "tmpl-7", "--at", EPOCH.isoformat())


def measure(size) -> list[Figure]:
    """Screen ``screen_recipients`` addresses against ``screen_people`` people with the CLI."""
    from policies import default_policy_path, load_policy

    policy = load_policy(default_policy_path())
    people, count = size.screen_people, size.screen_recipients
    with store("sqlite") as engine, tempfile.TemporaryDirectory(prefix="bench-screen-") as tmp:
        start = time.perf_counter()
        replicate(template_store(policy), engine, people)
        load_s = time.perf_counter() - start
        database = engine.url.render_as_string(hide_password=False)
        engine.dispose()
        recipients = Path(tmp) / "recipients.csv"
        write_list(recipients, count, people)
        out = Path(tmp) / "screened.csv"
        seconds, peak_kib, largest_kib, stderr = run_screen(recipients, out, database)
        rows, verdicts = read_result(out)
    if rows != count:
        raise NotMeasured(f"guard screen wrote {rows} rows for {count} recipients: "
                          f"{stderr[-300:]}")
    params = {"recipients": count, "people": people, "store": "sqlite", "commit": False,
              "attempt": " ".join(ATTEMPT), "seconds": round(seconds, 1),
              "verdicts": verdicts, "store_load_s": round(load_s, 1),
              "workers": workers(count), "largest_process_mib": round(largest_kib / 1024),
              # getrusage would say more: Linux keeps the fork's pre-exec high-water mark,
              # which is this benchmark's own memory (the 1M-person loader), not guard's.
              "command": "guard screen recipients.csv … -o screened.csv (its own process)"}
    return [
        Figure("screen_recipients_per_s", *FIGURES["screen_recipients_per_s"],
               value=round(count / seconds), params=params,
               note="wall time of the whole command: start-up, reading the CSV, screening, "
                    "recording the dry-run decisions, writing the annotated CSV"),
        Figure("screen_peak_memory_mib", *FIGURES["screen_peak_memory_mib"],
               value=round(peak_kib / 1024), params=params,
               note="peak of the summed resident set sizes of guard screen and its worker "
                    "processes, sampled every 50 ms"),
    ]


def workers(count: int) -> int:
    """Return how many processes ``guard screen`` uses for a list of ``count`` rows."""
    from guard.cli.screen import PARALLEL_FROM

    return (os.cpu_count() or 1) if count >= PARALLEL_FROM else 1


def write_list(path: Path, count: int, people: int, seed: int = 13) -> None:
    """Write a CSV of ``count`` recipients spread over ``people`` (2 % strangers)."""
    rnd = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["to", "first_name"])
        for n in range(count):
            i = rnd.randrange(people) if rnd.random() >= 0.02 else people + rnd.randrange(10**6)
            writer.writerow([email_of(i), f"Reader {n}"])


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
