"""What counting metrics costs a check: ``python -m bench.drill_metrics_cost``.

One process, one app on a temporary SQLite store: blocks of 150 dry-run checks
through the Flask test client, metrics counting on and off in turn (20 blocks
each), so the machine's drift hits both alike; then each hook alone, timed in
a tight loop. The README's Metrics note quotes these figures.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import tempfile
import time
import timeit
from collections import Counter

ADMIN = "a" * 40
BLOCKS, PER_BLOCK = 40, 150


def main() -> None:
    """Print the per-check cost with and without metrics, and each hook's own cost."""
    from guard import create_app
    from guard.ops import metrics

    folder = tempfile.mkdtemp(prefix="bench-metrics-")
    app = create_app({"DATABASE_URL": f"sqlite:///{folder}/guard.db", "ADMIN_KEY": ADMIN,
                      "WARN_MISSING_PROVIDERS": False})
    client = app.test_client()
    headers = {"Authorization": f"Bearer {ADMIN}"}
    body = {"channel": "email", "purpose": "newsletter", "sender": "oem", "commit": False}
    blocks: dict[bool, list[float]] = {True: [], False: []}
    with contextlib.redirect_stderr(io.StringIO()):  # the request log lines, both ways
        for _ in range(300):
            client.post("/v1/check", json={**body, "to": "warm@example.com"}, headers=headers)
        for block in range(BLOCKS):
            on = block % 2 == 0
            metrics._state["enabled"] = on
            started = time.perf_counter()
            for i in range(PER_BLOCK):
                client.post("/v1/check", json={**body, "to": f"p{i}@example.com"},
                            headers=headers)
            blocks[on].append((time.perf_counter() - started) / PER_BLOCK * 1e6)
    metrics._state["enabled"] = True
    for on in (False, True):
        print(f"metrics {'on ' if on else 'off'}: median {statistics.median(blocks[on]):.0f} µs "
              f"a check (fastest block {min(blocks[on]):.0f} µs)")
    pairs = [(a - b) / b * 100 for a, b in zip(blocks[True], blocks[False], strict=True)]
    print(f"on vs off, median of block pairs: {statistics.median(pairs):+.1f} %")
    labels = ("allow", "email", "marketing", "", "true")

    def decision() -> None:
        tally: Counter = Counter()
        tally[labels] += 1
        metrics.count_decisions(tally)

    hooks = {"request histogram": lambda: metrics.observe_request("/v1/check", "POST", 200,
                                                                  0.004),
             "decision counter": decision}
    for name, hook in hooks.items():
        best = min(timeit.repeat(hook, number=20000, repeat=7)) / 20000
        print(f"{name}: {best * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
