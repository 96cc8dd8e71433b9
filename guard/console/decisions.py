"""The decision list (filters, newest first, keyset pages of 50) and one decision's page.

Pages follow ``(at, id)`` downwards from the last row shown (the ``ix_ledger_at_id``
index; a person's rows through ``ix_ledger_person_committed_at``; a rule's through
``decision_rules``), so page 1,000 costs what page 1 does.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import sqlalchemy as sa
from flask import request

from guard.checks import lookups
from guard.console.pages import PageError, bp, engine, page
from guard.errors import InvalidField, NotFound
from guard.services import services
from guard.store.engine import read_only
from guard.store.tables import decision_rules, ledger
from policies.model import VERDICTS, parse_datetime

PAGE = 50
_LIST_COLUMNS = (ledger.c.id, ledger.c.at, ledger.c.person_id, ledger.c.channel,
                 ledger.c.purpose, ledger.c.sender, ledger.c.verdict, ledger.c.committed,
                 ledger.c.attempt, ledger.c.decision)
_TEXT_MAX = 255
# A decision's row, not a touch another system reported: decision ids start "dec_"
# (ledger.new_decision_id), touches' "tch_". Read from the index ix_ledger_at_id.
DECIDED = ledger.c.id.like("dec\\_%", escape="\\")


@dataclass
class Filters:
    """The filters of a decision list, read from the query string."""

    verdict: str = ""
    rule: str = ""
    channel: str = ""
    purpose: str = ""
    sender: str = ""
    since: str = ""
    until: str = ""
    person: str = ""

    def query(self, **extra: str) -> dict[str, str]:
        """The filters as query-string values (empty ones left out)."""
        return {k: v for k, v in {**vars(self), **extra}.items() if v}


def _moment(field: str, text: str, *, end: bool) -> datetime:
    """Read a date (whole day) or an ISO 8601 time; raise PageError naming the field."""
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).date()
            moment = datetime.combine(day + timedelta(days=1) if end else day, time(), UTC)
            return moment
        return parse_datetime(text).astimezone(UTC)
    except (ValueError, TypeError, OverflowError):
        raise PageError(f"{field}: not a date or time: {text!r} (use 2026-11-23 or "
                        "2026-11-23T10:00:00Z)") from None


def read_filters(args) -> tuple[Filters, list]:
    """Validate the query string; return the filters and their SQL conditions."""
    policy = services().guard.policy
    found = Filters(**{name: (args.get(name) or "").strip() for name in vars(Filters())})
    for name, value in vars(found).items():
        if len(value) > _TEXT_MAX:
            raise PageError(f"{name}: at most {_TEXT_MAX} characters")
    conditions: list = [DECIDED]
    if found.verdict:
        if found.verdict not in VERDICTS:
            raise PageError(f"verdict: {found.verdict!r} is not a verdict (choose "
                            f"{', '.join(VERDICTS)})")
        conditions.append(ledger.c.verdict == found.verdict)
    if found.channel:
        if found.channel not in policy.channels:
            raise PageError(f"channel: {found.channel!r} is not a channel (choose "
                            f"{', '.join(policy.channels)})")
        conditions.append(ledger.c.channel == found.channel)
    if found.purpose:
        if found.purpose not in policy.purposes:
            raise PageError(f"purpose: the policy knows no purpose {found.purpose!r}")
        conditions.append(ledger.c.purpose == found.purpose)
    if found.sender:
        conditions.append(_sender(found.sender))
    if found.since:
        conditions.append(ledger.c.at >= _moment("since", found.since, end=False))
    if found.until:
        conditions.append(ledger.c.at < _moment("until", found.until, end=True))
    if found.person:
        conditions.append(ledger.c.person_id == _person_id(found.person))
    return found, conditions


def _sender(pattern: str) -> sa.ColumnElement:
    """Match a sender by name, or by a pattern such as ``dealer:*`` (as policies write them)."""
    if "*" not in pattern:
        return ledger.c.sender == pattern
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return ledger.c.sender.like(escaped.replace("*", "%"), escape="\\")


def _person_id(text: str) -> str:
    """Resolve a person id, email, phone or ``system:id`` to the person's id."""
    guard = services().guard
    if text.startswith("per_"):
        to = {"person": text}
    elif ":" in text and "@" not in text:
        system, _, record = text.partition(":")
        to = {"system": system, "id": record}
    else:
        to = text
    try:
        found = guard.resolve(to)
    except InvalidField as exc:
        raise PageError(f"person: {exc.detail.partition(': ')[2] or exc.detail}") from None
    if found is None:
        raise PageError(f"person: no person matches {text!r}", 404)
    return found


def encode_cursor(at: datetime, row_id: str) -> str:
    """The cursor after a row: its time and id, in a URL-safe text."""
    text = f"{_utc(at).isoformat()}|{row_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, str]:
    """Read a cursor; raise PageError for one that is not ours."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        moment, _, row_id = raw.partition("|")
        if not row_id:
            raise ValueError(raw)
        return parse_datetime(moment).astimezone(UTC), row_id
    except (ValueError, TypeError, UnicodeDecodeError):
        raise PageError("after: not a page cursor of this list; start from the first "
                        "page") from None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def page_of(conditions: list, after: str | None, limit: int = PAGE, *,
            rule: str = "") -> tuple[list, str | None]:
    """Return one page of decisions, newest first, and the cursor of the next page.

    With ``rule``, only decisions one of whose reasons came from that rule, paged
    through the rule's own index (``decision_rules``).
    """
    query = sa.select(*_LIST_COLUMNS).where(*conditions)
    at_column, id_column = ledger.c.at, ledger.c.id
    if rule:
        query = query.select_from(ledger.join(decision_rules, sa.and_(
            decision_rules.c.decision_id == ledger.c.id, decision_rules.c.rule == rule)))
        at_column, id_column = decision_rules.c.at, decision_rules.c.decision_id
    if after:
        at, row_id = decode_cursor(after)
        # "at <= cursor" bounds the index range; the OR alone makes SQLite scan from the top.
        query = query.where(at_column <= at, sa.or_(at_column < at, id_column < row_id))
    query = query.order_by(at_column.desc(), id_column.desc()).limit(limit + 1)
    with read_only(engine().connect()) as conn:
        rows = conn.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].at, rows[-1].id) if more and rows else None)


def rules_of(decision: dict | None) -> list[str]:
    """The rules a recorded decision names."""
    return [r.get("rule") for r in (decision or {}).get("reasons") or () if isinstance(r, dict)]


@bp.get("/decisions")
def decisions():
    """List decisions, newest first, filtered, 50 a page."""
    policy = services().guard.policy
    filters, problem, rows, after = Filters(), None, [], None
    try:
        filters, conditions = read_filters(request.args)
        rows, after = page_of(conditions, request.args.get("after"), rule=filters.rule)
    except PageError as exc:
        problem = exc.message
    shown = [{"id": r.id, "at": r.at, "person": r.person_id, "channel": r.channel,
              "purpose": r.purpose, "sender": r.sender, "verdict": r.verdict,
              "committed": r.committed, "to": (r.attempt or {}).get("to"),
              "rules": rules_of(r.decision)} for r in rows]
    return page("console/decisions.html", status=400 if problem else 200, title="Decisions",
                problem=problem, filters=filters, rows=shown, after=after,
                verdicts=VERDICTS, channels=policy.channels, purposes=sorted(policy.purposes),
                rule_ids=[rule.id for rule in policy.rules])


@bp.get("/decisions/<decision_id>")
def decision(decision_id: str):
    """Show one decision: the attempt, every reason, evidence, monitored rules, version."""
    try:
        found = lookups.decision(engine(), decision_id)
    except NotFound:
        raise PageError(f"No decision {decision_id!r}: check the id.", 404) from None
    return page("console/decision.html", title=f"Decision {decision_id}", d=found)
