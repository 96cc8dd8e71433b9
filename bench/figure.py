"""What a benchmark reports: a figure with its value, unit, target and parameters.

A figure that cannot be measured (its part is missing, PostgreSQL is down)
is reported as such, with the reason, never as a crash of the whole run.
"""

from __future__ import annotations

import math
import operator
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


class NotMeasured(Exception):
    """A figure that cannot be measured here; the message says why."""


@dataclass(frozen=True)
class Target:
    """A figure's goal: ``value <op> bound`` (e.g. ≥ 20,000)."""

    op: str  # ">=" or "<="
    bound: float

    def met(self, value: float) -> bool:
        return (operator.ge if self.op == ">=" else operator.le)(value, self.bound)

    @property
    def text(self) -> str:
        return f"{'≥' if self.op == '>=' else '≤'} {self.bound:,g}"


@dataclass
class Figure:
    """One measured (or unmeasurable) figure."""

    name: str
    unit: str
    target: Target
    value: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None  # why it was not measured
    note: str | None = None
    # The value's spread over the rounds (the value is their median), what the floor is,
    # and the absolute figures behind the ratio, each with its own spread.
    spread: Spread | None = None
    floor: str | None = None
    absolute: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.target.met(self.value)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": self.value,
            "unit": self.unit,
            "target": self.target.text,
            "met": self.met,
            "params": self.params,
        }
        if self.spread is not None:
            out["rounds"] = self.spread.to_dict()
        if self.floor:
            out["floor"] = self.floor
        if self.absolute:
            out["absolute"] = {k: v.to_dict() if isinstance(v, Spread) else v
                               for k, v in self.absolute.items()}
        if self.value is None:
            out["status"] = "not measured"
            out["reason"] = self.reason
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class Spread:
    """A quantity measured in several rounds: their median, lowest and highest."""

    median: float
    low: float
    high: float
    count: int
    unit: str = ""

    @classmethod
    def of(cls, values: Sequence[float], unit: str = "", digits: int = 3) -> Spread:
        if not values:
            raise NotMeasured("no rounds")
        return cls(round(statistics.median(values), digits), round(min(values), digits),
                   round(max(values), digits), len(values), unit)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"median": self.median, "min": self.low, "max": self.high,
                               "rounds": self.count}
        if self.unit:
            out["unit"] = self.unit
        return out

    @property
    def text(self) -> str:
        return f"{_short(self.median)} ({_short(self.low)}–{_short(self.high)})"


def _short(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def ratio_figure(name: str, declared: tuple[str, Target], ratios: Sequence[float], *,
                 floor: str, absolute: dict[str, Any], params: dict[str, Any],
                 note: str | None = None) -> Figure:
    """Return a ratio figure: the median of the per-round ratios, with their spread."""
    spread = Spread.of(ratios)
    return Figure(name, *declared, value=spread.median, params=params, note=note,
                  spread=spread, floor=floor, absolute=absolute)


def rounds(runs: Sequence[Callable[[], float]], count: int) -> list[list[float]]:
    """Run each of ``runs`` once per round, in turn, ``count`` rounds; return each one's results.

    Taking turns within each round puts a figure and its floor under the same
    machine load, so their ratio stays honest on a busy machine.
    """
    results: list[list[float]] = [[] for _ in runs]
    for _ in range(count):
        for i, run in enumerate(runs):
            results[i].append(run())
    return results


def timed(run: Callable[[], Any]) -> Callable[[], float]:
    """Return a callable that runs ``run`` and returns the seconds it took."""
    def go() -> float:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    return go


def calibrate(count: int = 5) -> Spread:
    """Time a fixed pure-Python loop (milliseconds): how fast one core of this machine is now."""
    def loop() -> None:
        total = 0
        for i in range(1_000_000):
            total += i * i % 7
    return Spread.of([timed(loop)() * 1000 for _ in range(count)], "ms", 1)


def best_time(run: Callable[[], Any], rounds: int) -> float:
    """Return the fastest of ``rounds`` runs, in seconds (other load only ever adds time)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def side_by_side(first: Callable[[], Any], second: Callable[[], Any], rounds: int
                 ) -> tuple[float, float, float]:
    """Time two runs alternately; return each one's best time and the median of their ratios.

    Alternating within each round puts both under the same machine load,
    so the ratio stays honest on a busy machine.
    """
    a_times, b_times, ratios = [], [], []
    for _ in range(rounds):
        start = time.perf_counter()
        first()
        middle = time.perf_counter()
        second()
        end = time.perf_counter()
        a_times.append(middle - start)
        b_times.append(end - middle)
        ratios.append((middle - start) / (end - middle))
    return min(a_times), min(b_times), statistics.median(ratios)


def percentile(values: list[float], p: float) -> float:
    """Return the p-th percentile (0-100) of values, nearest-rank."""
    ordered = sorted(values)
    if not ordered:
        raise NotMeasured("no samples")
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]
