"""A policy with one frequency cap, for the tests of caps and batching."""

from __future__ import annotations

# A policy with one cap: three marketing contacts a person per 30 days.
CAP = 3
CAP_POLICY = f"""
rules:
  - id: cap
    kind: frequency_cap
    categories: [marketing]
    max: {CAP}
    window: 30d
"""
