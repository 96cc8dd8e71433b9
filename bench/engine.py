"""Engine figures: ``policies.decide`` in-process, profiles and ledgers in memory."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from bench.figure import Figure, Spread, Target, ratio_figure, rounds, timed
from bench.population import EPOCH, attempts, people_events
from bench.world import World
from policies import Attempt, decide, default_policy_path, load_policy
from policies.model import parse_datetime

FIGURES = {
    "engine_decisions_per_s": ("decisions/s", Target(">=", 20_000)),
    "engine_overhead_ratio": ("×", Target("<=", 5)),
}


def measure(size) -> list[Figure]:
    """Time decide() over a seeded population against fetching the same inputs from memory."""
    people, count, rounds_ = size.engine_people, size.engine_attempts, size.rounds
    policy = load_policy(default_policy_path())
    # Keep what the store would fetch: the ledger window the policy reads, and a margin
    # for attempts scheduled up to two days ahead.
    world = World.build(people_events(people), since=EPOCH - policy.ledger_window
                        - timedelta(days=2))
    tries = [_attempt(body) for body in attempts(count, people)]
    verdicts: Counter[str] = Counter()

    def deciding() -> None:
        verdicts.clear()
        for attempt in tries:
            profile, ledger = world.fetch(attempt.to)
            verdicts[decide(attempt, profile, ledger, policy, attempt.at,
                            world.campaigns).verdict] += 1

    def fetching() -> None:
        for attempt in tries:
            world.load(attempt.to)

    decide_s, fetch_s = rounds([timed(deciding), timed(fetching)], rounds_)
    rates = Spread.of([count / t for t in decide_s], "decisions/s", 0)
    params = {
        "people": people, "attempts": count, "rounds": rounds_, "policy": "default.yaml",
        "rules": len(policy.rules), "verdicts": dict(sorted(verdicts.items())),
    }
    return [
        Figure("engine_decisions_per_s", *FIGURES["engine_decisions_per_s"],
               value=rates.median, params=params, spread=rates,
               note="the floor of the other figures: screen is compared with it per core"),
        ratio_figure(
            "engine_overhead_ratio", FIGURES["engine_overhead_ratio"],
            [d / f for d, f in zip(decide_s, fetch_s, strict=True)],
            floor="read the person's profile and ledger from their stored form (the JSON the "
                  "store keeps) in memory and rebuild them, as any store read must",
            absolute={"decide_us": Spread.of([t / count * 1e6 for t in decide_s], "µs", 1),
                      "fetch_us": Spread.of([t / count * 1e6 for t in fetch_s], "µs", 1)},
            params=params),
    ]


def _attempt(body: dict) -> Attempt:
    return Attempt(channel=body["channel"], to=body["to"], purpose=body["purpose"],
                   sender=body["sender"], at=parse_datetime(body["at"]),
                   campaign=body.get("campaign"), template=body.get("template"),
                   product=body.get("product"))
