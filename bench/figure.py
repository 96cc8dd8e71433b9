"""What a benchmark reports: a figure with its value, unit, target and parameters.

A figure that cannot be measured (its part is missing, PostgreSQL is down)
is reported as such, with the reason, never as a crash of the whole run.
"""

from __future__ import annotations

import math
import operator
import statistics
import time
from collections.abc import Callable
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
        if self.value is None:
            out["status"] = "not measured"
            out["reason"] = self.reason
        if self.note:
            out["note"] = self.note
        return out


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
