"""A decision as the flat fields an automation step branches on (SPEC §4 in one level)."""

from __future__ import annotations

from policies.model import Decision


def fields(decision: Decision) -> dict[str, str]:
    """Return ``verdict``, ``reason``, ``rules``, ``not_before``, reroute and id as text.

    Workflow tools branch on text values ("Value equals"), so every field is a
    string, empty when it does not apply.
    """
    data = decision.to_dict()
    reroute = data.get("reroute") or {}
    return {
        "verdict": decision.verdict,
        "reason": " ".join(r.message for r in decision.reasons),
        "rules": ",".join(decision.rules),
        "not_before": data.get("not_before") or "",
        "reroute_owner": reroute.get("owner") or "",
        "reroute_channel": reroute.get("channel") or "",
        "decision_id": decision.decision_id or "",
    }
