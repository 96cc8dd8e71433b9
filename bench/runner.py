"""Run the benchmark groups, print a table and write ``bench/results.json``.

Each group is a module with ``FIGURES`` (name → unit and target) and
``measure(size) -> list[Figure]``. A group that cannot run (a missing part,
an unreachable database) reports its figures as not measured, with the
reason; the run itself never crashes because of one group.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.figure import Figure, NotMeasured, Spread, Target, calibrate

GROUPS = ("engine", "store", "growth", "http", "proxy", "screen", "sync", "console")
RESULTS = Path(__file__).with_name("results.json")
# Every group's figures, so a group whose module cannot even be imported still shows
# each of them as not measured; tests/test_bench.py keeps this in step with the modules.
DECLARED: dict[str, dict[str, tuple[str, Target]]] = {
    "engine": {"engine_decisions_per_s": ("decisions/s", Target(">=", 20_000)),
               "engine_overhead_ratio": ("×", Target("<=", 5))},
    "store": {f"store_commit_ratio.{b}{p}": ("×", Target("<=", 2.5 if b == "sqlite" else 2))
              for b in ("sqlite", "postgresql") for p in ("", ".batched", ".2proc")},
    "growth": {"store_growth_ratio": ("×", Target("<=", 1.2))},
    "http": {f"http_check_p99_ratio{b}": ("×", Target("<=", 3)) for b in ("", ".postgresql")},
    "proxy": {"proxy_added_p50_ratio": ("×", Target("<=", 1.5)),
              "proxy_throughput_ratio": ("×", Target(">=", 0.8))},
    "screen": {"screen_decide_ratio": ("×", Target(">=", 0.5)),
               "screen_peak_memory_mib": ("MiB", Target("<=", 1024))},
    "sync": {f"sync_ratio.{s}": ("×", Target(">=", 0.6))
             for s in ("salesforce", "hubspot")},
    "console": {f"console_page_p95_ms.{page}": ("ms", Target("<=", 100)) for page in (
        "overview", "decisions", "decisions_filtered", "decisions_rule", "decisions_rare_rule",
        "decisions_no_match", "decisions_person", "decisions_deep", "decision",
        "people_search", "people_search_name", "people_search_words", "person", "outbox",
        "keys", "policy", "audit")},
}


@dataclass(frozen=True)
class Size:
    """How big each group runs: reduced for ``--quick``, full otherwise."""

    mode: str
    rounds: int
    engine_people: int
    engine_attempts: int
    store_people: int
    store_template: int
    store_checks: int
    growth_small: int
    growth_large: int
    growth_checks: int
    http_probe_seconds: float
    http_seconds: float
    proxy_sends: int
    screen_people: int
    screen_recipients: int
    sync_records: int


QUICK = Size(mode="quick", rounds=3, engine_people=2_000, engine_attempts=3_000,
             store_people=2_000, store_template=200, store_checks=150,
             growth_small=1_000, growth_large=10_000, growth_checks=300,
             http_probe_seconds=0.5, http_seconds=0.7, proxy_sends=60,
             screen_people=5_000, screen_recipients=5_000, sync_records=300)
FULL = Size(mode="full", rounds=5, engine_people=10_000, engine_attempts=20_000,
            store_people=10_000, store_template=1_000, store_checks=1_000,
            growth_small=10_000, growth_large=1_000_000, growth_checks=3_000,
            http_probe_seconds=3, http_seconds=4, proxy_sends=400,
            screen_people=1_000_000, screen_recipients=200_000, sync_records=10_000)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the chosen groups, print and save the results."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="every figure at reduced size (about a minute)")
    parser.add_argument("--only", nargs="+", choices=GROUPS, metavar="GROUP",
                        help=f"run only these groups ({', '.join(GROUPS)})")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    chosen = args.only or GROUPS
    figures: list[Figure] = []
    started = time.perf_counter()
    # The same fixed loop before and after: how fast a core of this machine was during
    # the run, so runs of different days compare (and a busy spell shows).
    before = calibrate(size.rounds)
    for group in GROUPS:
        if group in chosen:
            figures.extend(run_group(group, size))
    after = calibrate(size.rounds)
    elapsed = time.perf_counter() - started
    print(table(figures))
    print(f"\ncalibration loop {before.text} ms before, {after.text} ms after "
          f"(median, min–max of {before.count})")
    print(f"{size.mode} run, {elapsed:.0f} s; results in {args.out}")
    write(args.out, figures, size, elapsed, {"before": before, "after": after})
    return 0


def run_group(group: str, size: Size) -> list[Figure]:
    """Run one group; turn any failure into 'not measured' figures that say why."""
    print(f"[bench] {group} …", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"bench.{group}")
    except Exception as exc:  # noqa: BLE001 - a group that cannot load is reported, not fatal
        detail = traceback.format_exception_only(exc)[-1].strip()
        return _unmeasured(DECLARED.get(group, {}), f"cannot import bench.{group}: {detail}")
    try:
        figures = module.measure(size)
    except NotMeasured as exc:
        figures = _unmeasured(module.FIGURES, str(exc))
    except Exception as exc:  # noqa: BLE001 - one broken part must not stop the others
        detail = traceback.format_exception_only(exc)[-1].strip()
        figures = _unmeasured(module.FIGURES, f"failed: {detail}")
        traceback.print_exc(file=sys.stderr)
    print(f"[bench] {group} done in {time.perf_counter() - started:.1f} s",
          file=sys.stderr, flush=True)
    return figures


def _unmeasured(declared: dict, reason: str) -> list[Figure]:
    return [Figure(name, unit, target, reason=reason)
            for name, (unit, target) in declared.items()]


def table(figures: list[Figure]) -> str:
    """Render the figures as a plain-text table: median, its rounds' range, target, absolutes."""
    rows = [("figure", "value", "rounds min–max", "target", "met", "absolute (median)")]
    for f in figures:
        if f.value is None:
            rows.append((f.name, "not measured", "", f.target.text, "", f.reason or ""))
            continue
        spread = f"{_number(f.spread.low)}–{_number(f.spread.high)}" if f.spread else ""
        rows.append((f.name, f"{_number(f.value)} {f.unit}", spread, f.target.text,
                     "yes" if f.met else "NO", _absolute(f)))
    measured = [r for r in rows if r[1] != "not measured"]
    widths = [max(len(r[i]) for r in measured) for i in range(5)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:5])) + "  " + r[5]
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _absolute(figure: Figure, most: int = 3) -> str:
    parts = []
    for name, value in list(figure.absolute.items())[:most]:
        if isinstance(value, Spread):
            parts.append(f"{name} {_number(value.median)}")
        else:
            parts.append(f"{name} {value}")
    return ", ".join(parts)


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def write(path: Path, figures: list[Figure], size: Size, elapsed: float,
          calibration: dict[str, Spread]) -> None:
    """Write figure name → value, unit, target and parameters, with the machine it ran on."""
    data = {
        "run": {
            "mode": size.mode,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(elapsed, 1),
            "machine": machine(),
            "calibration": {"loop": "sum of i * i % 7 for i below 1,000,000, pure Python",
                            **{k: v.to_dict() for k, v in calibration.items()}},
        },
        "figures": {f.name: f.to_dict() for f in figures},
    }
    path.write_text(json.dumps(data, indent=2) + "\n")


def machine() -> dict:
    """Describe the machine: CPU model, cores, memory, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        memory = f"{pages * page / 2**30:.1f} GiB"
    except (ValueError, OSError, AttributeError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": memory,
            "python": platform.python_version(), "os": platform.platform(terse=True)}
