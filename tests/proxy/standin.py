"""A Guard whose verdicts come from a table, to test the proxy's mechanics in isolation.

It has the façade's signature (``check(body, *, commit, defaults)``,
``check_many(bodies, *, commit, defaults, then)``, ``person``, ``engine``,
``clock``, ``recorders``) and raises (or, in a batch, returns) the same InvalidField; the
policy itself is tested elsewhere, and the end-to-end tests use the real Guard.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from guard.errors import InvalidField
from policies.model import Decision, Finding


class _Policy:
    purposes = {p: "marketing" for p in ("promotion", "price_offer", "newsletter",
                                         "service_reminder", "payment_reminder",
                                         "transactional")}

    def knows_sender(self, sender: str) -> bool:
        return sender in ("oem", "service", "billing") or sender.startswith("dealer:")


class ScriptedGuard:
    """Answer ``verdicts[to]`` (default allow); record every check made."""

    def __init__(self, engine, verdicts: dict | None = None, phones: dict | None = None):
        self.engine = engine
        self.policy = _Policy()
        self.clock = lambda: datetime.now(UTC)
        self.verdicts = dict(verdicts or {})
        self.phones = dict(phones or {})
        self.checks: list[dict] = []
        self.recorders: list = []

    def check(self, body, *, commit: bool = True, defaults=None) -> Decision:
        attempt = {**(defaults or {}), **{k: v for k, v in body.items() if v is not None}}
        for name in ("purpose", "sender"):
            if attempt.get(name) == "bogus":
                raise InvalidField(name, f"unknown {name} 'bogus'")
        if not attempt.get("to") or "@@" in str(attempt["to"]):
            raise InvalidField("to", f"not an email address or phone number: {attempt.get('to')!r}")
        self.checks.append({**attempt, "commit": commit})
        verdict = self.verdicts.get(attempt["to"], "allow")
        if callable(verdict):
            verdict = verdict(attempt)
        person = "per_" + attempt["to"].split("@")[0].strip("+")
        reasons, reroute, not_before = (), None, None
        if verdict == "block":
            reasons = (Finding("consent", "consent", "block",
                               f"{attempt['to']} opted out of {attempt['channel']} on "
                               "2026-11-01."),)
        elif verdict == "defer":
            not_before = datetime.now(UTC) + timedelta(hours=2)
            reasons = (Finding("contact-window", "contact_window", "defer",
                               "Outside contact hours 09:00-18:00."),)
        elif verdict in ("reroute", "reroute-sms"):
            reroute = {"owner": "dealer:munich"} if verdict == "reroute" else {"channel": "sms"}
            verdict = "reroute"
            reasons = (Finding("relationship-owner", "relationship_owner", "reroute",
                               "Customer of dealer:munich; the dealer carries the contact."),)
        return Decision(verdict, person, reasons, reroute, not_before, (), "sha256:test",
                        "dec_" + secrets.token_hex(8))

    def check_many(self, bodies, *, commit: bool = True, defaults=None, then=None) -> list:
        """Decide each body as ``check`` does; ``then`` runs in a transaction that keeps them.

        Like the real Guard, decisions count only if ``then`` commits: when it
        raises, the checks it saw are forgotten.
        """
        before = len(self.checks)
        outcomes = []
        for body in bodies:
            try:
                outcomes.append(self.check(body, commit=commit, defaults=defaults))
            except InvalidField as exc:
                outcomes.append(exc)
        if then is not None:
            try:
                with self.engine.begin() as conn:
                    then(conn, outcomes)
            except BaseException:
                del self.checks[before:]
                raise
        return outcomes

    def person(self, person_id: str) -> dict:
        return {"id": person_id, "profile": {"phones": self.phones.get(person_id, [])}}
