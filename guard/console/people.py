"""People: find someone by email, phone, name or CRM id; their profile, flags and timeline.

Erasure goes through the normal erase event (``Guard.ingest``), behind a
confirmation the reader types: the person's id.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime

import sqlalchemy as sa
from flask import redirect, request, url_for

from guard.console import audit
from guard.console.pages import PageError, bp, engine, page, require_change
from guard.errors import NotFound
from guard.ingest import names
from guard.ingest.identity import Ref, address, source_ref
from guard.ingest.people import resolve_person
from guard.services import services
from guard.store.engine import read_only
from guard.store.tables import people
from policies.model import parse_datetime

RESULTS = 20
# CRM ids typed without their system are looked for in each of these.
_SYSTEMS = ("salesforce", "hubspot")


def _refs(q: str) -> list[Ref]:
    """The identities a search text could be: a person id, address, or CRM id."""
    region = services().guard.policy.defaults.region
    if q.startswith("per_"):
        return [Ref("person", q)]
    if ":" in q and "@" not in q and not q.startswith("+"):
        system, _, record = q.partition(":")
        try:
            return [source_ref(system, record)]
        except ValueError:
            return []
    refs = []
    try:
        refs.append(address(q, region))
    except ValueError:
        pass
    if "@" not in q:
        refs += [source_ref(system, q) for system in _SYSTEMS]
    return refs


def search(q: str) -> list[dict]:
    """Find people by id, email, phone, CRM id or the starts of their name's words."""
    found: list[str] = []
    with read_only(engine().connect()) as conn:
        for ref in _refs(q):
            person_id = resolve_person(conn, ref)
            if person_id and person_id not in found:
                found.append(person_id)
        if len(q) >= 2 and not found:
            found += names.search(conn, q, RESULTS)
        rows = conn.execute(sa.select(people.c.id, people.c.profile, people.c.flags,
                                      people.c.erased)
                            .where(people.c.id.in_(found[:RESULTS]))).all() if found else []
    by_id = {r.id: r for r in rows}
    return [{"id": p, "name": (by_id[p].profile or {}).get("name"),
             "emails": (by_id[p].profile or {}).get("emails") or [],
             "phones": (by_id[p].profile or {}).get("phones") or [],
             "status": (by_id[p].flags or {}).get("status") or "Clear",
             "erased": by_id[p].erased} for p in found if p in by_id]


@bp.get("/people", endpoint="people")
def people_search():
    """Search people by email, phone, name or CRM id."""
    q = (request.args.get("q") or "").strip()
    if len(q) > 320:
        return page("console/people.html", status=400, title="People", q=q[:320], results=[],
                    problem="q: at most 320 characters")
    results = search(q) if q else []
    return page("console/people.html", title="People", q=q, results=results)


def _moment(value) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = parse_datetime(value)
    except (ValueError, TypeError):
        return None
    if isinstance(moment, datetime):
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if isinstance(moment, date):
        return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return None


def timeline(profile: dict, recent: list[dict]) -> list[dict]:
    """One list, newest first: the person's facts and the ledger, each with its source."""
    items: list[dict] = []

    def add(at, kind: str, text: str, source, link: str | None = None) -> None:
        items.append({"at": _moment(at), "kind": kind, "text": text, "source": source,
                      "link": link})

    for p in profile.get("purchases") or ():
        amount = f", {p.get('amount')} {p.get('currency') or ''}" if p.get("amount") else ""
        add(p.get("at"), "purchase", f"Bought {p.get('product') or 'something'}{amount}",
            p.get("source"))
    for c in profile.get("contracts") or ():
        add(c.get("start"), "contract", f"Contract {c.get('product') or ''} "
            f"({c.get('status')}, until {c.get('end') or 'open-ended'}, owner "
            f"{c.get('owner') or 'none'})", c.get("source"))
    for c in profile.get("cases") or ():
        add(c.get("at"), "case", f"Case ({c.get('status')}): {c.get('subject') or ''}",
            c.get("source"))
    for s in profile.get("services") or ():
        add(s.get("at"), "service", f"Service of {s.get('asset') or 'an asset'}"
            f"{', next due ' + str(s.get('next_due')) if s.get('next_due') else ''}",
            s.get("source"))
    for i in profile.get("invoices") or ():
        paid = f", paid {i.get('paid_at')}" if i.get("paid_at") else ", unpaid"
        add(i.get("sent_at"), "invoice", f"Invoice {i.get('number') or ''} due "
            f"{i.get('due') or '?'}{paid}", i.get("source"))
    for c in profile.get("consents") or ():
        add(c.get("at"), "consent", f"{c.get('status')} for {c.get('channel')} / "
            f"{c.get('purpose')}", c.get("source"))
    for row in recent:
        what = f"{row['channel']} {row['purpose']} from {row['sender']}"
        if row.get("source"):
            add(row["at"], "touch", f"Contact made: {what}", row["source"])
        else:
            add(row["at"], "decision", f"{row['verdict']}: {what}"
                + ("" if row.get("committed") else " (dry run)"),
                {"system": "guard", "type": "decision", "id": row["id"]},
                url_for("console.decision", decision_id=row["id"]))
    epoch = datetime.min.replace(tzinfo=UTC)
    items.sort(key=lambda item: item["at"] or epoch, reverse=True)
    return items


@bp.get("/people/<person_id>")
def person(person_id: str):
    """Show a person: merged profile, flags as reps see them, one timeline."""
    try:
        found = services().guard.person(person_id)
    except NotFound:
        raise PageError(f"No person {person_id!r}: check the id, or search.", 404) from None
    if found["id"] != person_id:
        return redirect(url_for("console.person", person_id=found["id"]))
    profile = found["profile"] or {}
    return page("console/person.html", title=profile.get("name") or person_id, p=found,
                profile=profile, items=timeline(profile, found["ledger"]))


@bp.post("/people/<person_id>/erase")
def erase(person_id: str):
    """Erase a person (right to erasure) through the normal erase event, once confirmed."""
    who = require_change()
    if (request.form.get("confirm") or "").strip() != person_id:
        raise PageError(f"confirm: type the person's id ({person_id}) to erase them; "
                        "nothing was erased.")
    guard = services().guard
    result = guard.ingest([{"type": "erase",
                            "source": {"system": "console",
                                       "id": f"{person_id}:{secrets.token_hex(4)}"},
                            "person": {"person": person_id}}])
    if result.get("rejected"):
        raise PageError(f"Not erased: {result['rejected'][0].get('detail')}")
    with engine().begin() as conn:
        audit.record(conn, who, "person.erase", person_id)
    return redirect(url_for("console.person", person_id=person_id, erased="1"))

