"""The decision list (filters, newest first, keyset pages of 50) and one decision's page.

Pages follow ``(at, id)`` downwards from the last row shown (the ``ix_ledger_at_id``
index; a person's rows through ``ix_ledger_person_committed_at``; a rule's through
``decision_rules``), so page 1,000 costs what page 1 does. Filters no index answers
(verdict, channel, purpose, sender) are tested on at most ``SCAN`` rows of that index a
page: a combination nobody matches says how far back it looked and offers the next
stretch, instead of reading the whole ledger while the reader waits.
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
# Rows of an index a page tests against filters no index answers (verdict, channel …).
SCAN = 10_000
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


@dataclass
class Selection:
    """What a decision list asks the store: the index stretches it reads, what each row needs.

    Each of ``sources`` narrows one index the list pages through newest first (the
    ledger's by time; a person's committed decisions and their dry runs, each in its
    own order; a rule's in ``decision_rules``); ``checked`` is tested on each row an
    index yields, at most ``SCAN`` of them a page.
    """

    sources: list[list]
    checked: list
    rule: str = ""
    # The index holds times but not decision ids (a person's): a stretch ends at a time.
    by_time: bool = False


def read_filters(args) -> tuple[Filters, Selection]:
    """Validate the query string; return the filters and what they select."""
    policy = services().guard.policy
    found = Filters(**{name: (args.get(name) or "").strip() for name in vars(Filters())})
    for name, value in vars(found).items():
        if len(value) > _TEXT_MAX:
            raise PageError(f"{name}: at most {_TEXT_MAX} characters")
    checked: list = []
    if found.verdict:
        if found.verdict not in VERDICTS:
            raise PageError(f"verdict: {found.verdict!r} is not a verdict (choose "
                            f"{', '.join(VERDICTS)})")
        checked.append(ledger.c.verdict == found.verdict)
    if found.channel:
        if found.channel not in policy.channels:
            raise PageError(f"channel: {found.channel!r} is not a channel (choose "
                            f"{', '.join(policy.channels)})")
        checked.append(ledger.c.channel == found.channel)
    if found.purpose:
        if found.purpose not in policy.purposes:
            raise PageError(f"purpose: the policy knows no purpose {found.purpose!r}")
        checked.append(ledger.c.purpose == found.purpose)
    if found.sender:
        checked.append(_sender(found.sender))
    since = _moment("since", found.since, end=False) if found.since else None
    until = _moment("until", found.until, end=True) if found.until else None
    person = ledger.c.person_id == _person_id(found.person) if found.person else None
    at = decision_rules.c.at if found.rule else ledger.c.at
    keyed = ([decision_rules.c.rule == found.rule] if found.rule else [DECIDED]) + \
        ([at >= since] if since else []) + ([at < until] if until else [])
    if person is None:
        return found, Selection([keyed], checked, found.rule)
    if found.rule:
        # Within a rule's decisions, each is tested for the person.
        return found, Selection([keyed], [*checked, person], found.rule)
    # A person's committed decisions and dry runs are each in time order in their index
    # (person, committed, time), not together: read apart, merged here.
    return found, Selection([[*keyed[1:], person, ledger.c.committed == committed]
                             for committed in (sa.true(), sa.false())],
                            [DECIDED, *checked], by_time=True)


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
        # An empty id is a stretch that ended at a time: the next starts before it.
        moment, bar, row_id = raw.partition("|")
        if not bar:
            raise ValueError(raw)
        return parse_datetime(moment).astimezone(UTC), row_id
    except (ValueError, TypeError, UnicodeDecodeError):
        raise PageError("after: not a page cursor of this list; start from the first "
                        "page") from None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def page_of(selection: Selection, after: str | None, limit: int = PAGE
            ) -> tuple[list, str | None, datetime | None]:
    """Return one page of decisions, newest first, the next page's cursor, and how far back
    the rows tested reached when they ran out before the page filled (else None)."""
    cursor = decode_cursor(after) if after else None
    with read_only(engine().connect()) as conn:
        parts = [_stretch(conn, selection, keyed, cursor, limit) for keyed in selection.sources]
    # Each stretch ends where its index was read to; rows past the newest such end are
    # left for the next page, which reads on from there.
    cutoff = max((end for _, end in parts if end is not None), default=None)
    rows = sorted((row for found, _ in parts for row in found
                   if cutoff is None or _key(row.at, row.id) >= cutoff),
                  key=lambda row: _key(row.at, row.id), reverse=True)
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].at, rows[-1].id), None
    if cutoff is not None:
        return rows, encode_cursor(*cutoff), cutoff[0]
    return rows, None, None


def _stretch(conn, selection: Selection, keyed: list, cursor: tuple[datetime, str] | None,
             limit: int) -> tuple[list, tuple[datetime, str] | None]:
    """Read one index newest first from ``cursor``: up to a page and one of rows that pass
    every filter, and, when filters were tested, where the ``SCAN`` rows read ended."""
    if selection.rule:
        keyed_by = decision_rules
        source = ledger.join(decision_rules, decision_rules.c.decision_id == ledger.c.id)
        at_column, id_column = decision_rules.c.at, decision_rules.c.decision_id
    else:
        keyed_by = source = ledger
        at_column, id_column = ledger.c.at, ledger.c.id
    conditions = list(keyed)
    if cursor:
        at, row_id = cursor
        # "at <= cursor" bounds the index range; the OR alone makes SQLite scan from the top.
        conditions += [at_column <= at, sa.or_(at_column < at, id_column < row_id)]
    newest_first = (at_column.desc(), id_column.desc())
    end = None
    if selection.checked and selection.by_time:
        # Read from the index alone: the time SCAN rows back. Every row of that time is in
        # this stretch, so the next one starts before it (one person has few at a time).
        before = [] if cursor is None else [
            at_column < cursor[0] if cursor[1] == "" else at_column <= cursor[0]]
        ends = conn.execute(sa.select(at_column).where(*keyed, *before)
                            .order_by(at_column.desc()).offset(SCAN - 1).limit(1)).scalar()
        if ends is not None:
            end = _key(ends, "")
            conditions.append(at_column >= ends)
    elif selection.checked:
        # Filters no index answers are tested on the next SCAN rows of the index, not on
        # however many it takes to fill a page: a rare combination answers as fast, and
        # the reader is offered the next stretch.
        last = conn.execute(sa.select(at_column, id_column).select_from(keyed_by)
                            .where(*conditions).order_by(*newest_first)
                            .offset(SCAN - 1).limit(1)).first()
        if last is not None:
            end = _key(last[0], last[1])
            conditions += [at_column >= last[0], sa.or_(at_column > last[0],
                                                        id_column >= last[1])]
    rows = conn.execute(sa.select(*_LIST_COLUMNS).select_from(source)
                        .where(*conditions, *selection.checked)
                        .order_by(*newest_first).limit(limit + 1)).all()
    return rows, end


def _key(at: datetime, row_id: str) -> tuple[datetime, str]:
    return _utc(at), row_id


def rules_of(decision: dict | None) -> list[str]:
    """The rules a recorded decision names."""
    return [r.get("rule") for r in (decision or {}).get("reasons") or () if isinstance(r, dict)]


@bp.get("/decisions")
def decisions():
    """List decisions, newest first, filtered, 50 a page."""
    policy = services().guard.policy
    filters, problem, rows, after, reached = Filters(), None, [], None, None
    try:
        filters, selection = read_filters(request.args)
        rows, after, reached = page_of(selection, request.args.get("after"))
    except PageError as exc:
        problem = exc.message
    shown = [{"id": r.id, "at": r.at, "person": r.person_id, "channel": r.channel,
              "purpose": r.purpose, "sender": r.sender, "verdict": r.verdict,
              "committed": r.committed, "to": (r.attempt or {}).get("to"),
              "rules": rules_of(r.decision)} for r in rows]
    return page("console/decisions.html", status=400 if problem else 200, title="Decisions",
                problem=problem, filters=filters, rows=shown, after=after, reached=reached,
                scan=SCAN,
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
