"""Screen figures: ``guard screen`` on a list of recipients against a populated store.

The list is a CSV of email addresses spread over the whole population (one in
fifty matches nobody, as on a bought list), screened as a dry run with one
newsletter attempt template, the way a marketer scrubs a list before a
campaign. The command runs as its own process, as a user runs it, so its wall
time includes start-up and writing the annotated CSV, and its peak resident
memory is the operating system's count for that process alone.
"""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
import tempfile
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
        seconds, peak_kib, stderr = run_screen(recipients, out, database)
        rows, verdicts = read_result(out)
    if rows != count:
        raise NotMeasured(f"guard screen wrote {rows} rows for {count} recipients: "
                          f"{stderr[-300:]}")
    params = {"recipients": count, "people": people, "store": "sqlite", "commit": False,
              "attempt": " ".join(ATTEMPT), "seconds": round(seconds, 1),
              "verdicts": verdicts, "store_load_s": round(load_s, 1),
              "command": "guard screen recipients.csv … -o screened.csv (its own process)"}
    return [
        Figure("screen_recipients_per_s", *FIGURES["screen_recipients_per_s"],
               value=round(count / seconds), params=params,
               note="wall time of the whole command: start-up, reading the CSV, screening, "
                    "recording the dry-run decisions, writing the annotated CSV"),
        Figure("screen_peak_memory_mib", *FIGURES["screen_peak_memory_mib"],
               value=round(peak_kib / 1024), params=params,
               note="peak resident set size of the guard screen process (getrusage)"),
    ]


def write_list(path: Path, count: int, people: int, seed: int = 13) -> None:
    """Write a CSV of ``count`` recipients spread over ``people`` (2 % strangers)."""
    rnd = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["to", "first_name"])
        for n in range(count):
            i = rnd.randrange(people) if rnd.random() >= 0.02 else people + rnd.randrange(10**6)
            writer.writerow([email_of(i), f"Reader {n}"])


def run_screen(recipients: Path, out: Path, database: str) -> tuple[float, int, str]:
    """Run ``guard screen``; return its wall time, peak RSS in KiB and its stderr."""
    guard = Path(sys.executable).with_name("guard")
    if not guard.exists():
        raise NotMeasured("the guard command is not installed in this environment")
    env = {**os.environ, "GUARD_DATABASE_URL": database}
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([str(guard), "screen", str(recipients), *ATTEMPT, "--dry-run",
                                 "-o", str(out)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        # wait4 gives this child's own resource usage, not that of every child so far.
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise NotMeasured(f"guard screen exited with {proc.returncode}: {stderr[-300:]}")
    return seconds, usage.ru_maxrss, stderr


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
