"""Consent: opt-outs by channel and purpose, do-not-contact lists, dead addresses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from policies import phrases
from policies.model import Consent, Finding
from policies.rules.base import Context, Rule

# Statuses that stop contact. A bounced or invalid address is a fact about the
# address, so it stops every purpose on that channel until a later opt-in
# (the person gave a working address again).
OPT_OUT = "opt_out"
DEAD_ADDRESS = ("bounced", "invalid")
_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class ConsentRule(Rule):
    """Block a contact the person opted out of, or one to an address that does not work."""

    kind: ClassVar[str] = "consent"
    default_effect: ClassVar[str] = "block"
    allowed_effects: ClassVar[tuple[str, ...]] = ("block",)

    exempt: tuple[str, ...] = ("transactional", "safety_recall")

    def evaluate(self, ctx: Context) -> Finding | None:
        attempt = ctx.attempt
        if attempt.purpose in self.exempt:
            return None
        consents = ctx.profile.consents
        if not consents:
            return None
        # A consent concerns this attempt when it names its channel (or all), and its
        # purpose, category (or all); a dead address concerns every purpose.
        channels = ("*", attempt.channel)
        purposes = ("*", attempt.purpose, ctx.category)
        relevant = [c for c in consents if c.channel in channels
                    and (c.status in DEAD_ADDRESS or c.purpose in purposes)]
        if not relevant:
            return None
        # The latest record wins (an opt-in after an opt-out re-allows); on a
        # tie the restrictive record wins.
        latest = max(relevant, key=lambda c: (c.at or _EPOCH, c.status != "opt_in"))
        if latest.status == OPT_OUT:
            message = self._opt_out_sentence(latest, ctx)
        elif latest.status in DEAD_ADDRESS:
            message = (
                f"The {phrases.channel(attempt.channel)} address {attempt.to} was marked "
                f"{latest.status}{_on(latest)}; nothing goes to it by "
                f"{phrases.channel(attempt.channel)} until the person gives a working one."
            )
        else:
            return None
        return self.finding(
            ctx, message, evidence=phrases.sources(latest),
            facts={"status": latest.status, "date": phrases.day(latest.at) if latest.at else ""},
        )

    @staticmethod
    def _opt_out_sentence(consent: Consent, ctx: Context) -> str:
        attempt = ctx.attempt
        channel = (
            "every channel" if consent.channel == "*" else phrases.channel(consent.channel)
        )
        if consent.purpose == "*":
            what = "all contact"
        elif consent.purpose == attempt.purpose:
            what = phrases.purposes(attempt.purpose)
        else:
            what = phrases.category(consent.purpose)
        return (
            f"Opted out of {what} by {channel}{_on(consent)}; no "
            f"{phrases.purposes(attempt.purpose)} by {phrases.channel(attempt.channel)} "
            f"until they opt in again."
        )


def _on(consent: Consent) -> str:
    return f" on {phrases.day(consent.at)}" if consent.at else ""
