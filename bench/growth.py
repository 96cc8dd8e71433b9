"""Store growth: time per committed check at the large population ÷ at the small one."""

from __future__ import annotations

from bench.figure import Figure, Spread, Target, ratio_figure, rounds, timed
from bench.loader import replicate, store, template_store
from bench.population import EPOCH, attempts

FIGURES = {"store_growth_ratio": ("×", Target("<=", 1.2))}


def measure(size) -> list[Figure]:
    """Check the same number of attempts against a small and a large SQLite store, alternately."""
    from guard.checks.service import Guard
    from policies import default_policy_path, load_policy

    policy = load_policy(default_policy_path())
    small, large = size.growth_small, size.growth_large
    per_round = max(1, size.growth_checks // size.rounds)
    template = template_store(policy, size.store_template)
    with store("sqlite") as small_engine, store("sqlite") as large_engine:
        replicate(template, small_engine, small)
        replicate(template, large_engine, large)
        guards = [Guard(e, policy, clock=lambda: EPOCH) for e in (small_engine, large_engine)]
        # Each store gets its own attempts over its whole population, so the large
        # store's reads land anywhere in its million rows, not in a warm corner.
        batches = [list(attempts(per_round * size.rounds + 50, n, seed=29)) for n in (small, large)]
        for guard, bodies in zip(guards, batches, strict=True):
            for body in bodies[:50]:
                guard.check(body)
        cursor = [50, 50]

        def checks(which: int):
            def go() -> None:
                first = cursor[which]
                cursor[which] += per_round
                for body in batches[which][first:first + per_round]:
                    guards[which].check(body)
            return go

        large_s, small_s = rounds([timed(checks(1)), timed(checks(0))], size.rounds)
    return [ratio_figure(
        "store_growth_ratio", FIGURES["store_growth_ratio"],
        [a / b for a, b in zip(large_s, small_s, strict=True)],
        floor=f"the same committed checks against {small:,} people, alternated round by round",
        absolute={"small_ms_per_check": Spread.of([t / per_round * 1000 for t in small_s], "ms"),
                  "large_ms_per_check": Spread.of([t / per_round * 1000 for t in large_s], "ms")},
        params={"backend": "sqlite", "small_people": small, "large_people": large,
                "checks_per_round": per_round, "rounds": size.rounds})]
