"""People: fresh person ids, the person a reference names, and merging two people into one.

A person is found by an identity (email, phone, CRM or source id) or by their
id. A merged-away id stays valid: ``person_aliases`` names the person it was
folded into, so ids already in CRMs, decisions and links keep resolving.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from guard.ingest import names
from guard.ingest.identity import Ref
from guard.store.tables import identities, ledger, owner_tasks, people, person_aliases, records
from guard.store.util import chunks

# Values bound to one look-up statement.
LOOKUP_CHUNK = 500

# Built once: checks resolve a recipient on every call.
_PERSON_OR_ALIAS = sa.union_all(
    sa.select(people.c.id.label("id")).where(people.c.id == sa.bindparam("value")),
    sa.select(person_aliases.c.person_id.label("id"))
    .where(person_aliases.c.alias == sa.bindparam("value")),
)
_PEOPLE_OR_ALIASES = sa.union_all(
    sa.select(people.c.id.label("value"), people.c.id.label("id"))
    .where(people.c.id.in_(sa.bindparam("ids", expanding=True))),
    sa.select(person_aliases.c.alias.label("value"), person_aliases.c.person_id.label("id"))
    .where(person_aliases.c.alias.in_(sa.bindparam("ids", expanding=True))),
)
_PERSON_OF_IDENTITY = sa.select(identities.c.person_id).where(
    identities.c.kind == sa.bindparam("kind"), identities.c.value == sa.bindparam("value"))
# One kind at a time: the primary key (kind, value) finds a list of values of one kind,
# where a list of values alone scans every identity.
_PEOPLE_OF_IDENTITIES = sa.select(identities.c.value, identities.c.person_id).where(
    identities.c.kind == sa.bindparam("kind"),
    identities.c.value.in_(sa.bindparam("values", expanding=True)))


def new_person_id() -> str:
    """Return a fresh person id."""
    return "per_" + secrets.token_hex(10)


def resolve_person(conn: Connection, ref: Ref) -> str | None:
    """Return the id of the live person a reference names, or None (one query)."""
    if ref.kind == "person":
        return conn.execute(_PERSON_OR_ALIAS, {"value": ref.value}).scalar()
    return conn.execute(_PERSON_OF_IDENTITY, {"kind": ref.kind, "value": ref.value}).scalar()


def current_people(conn: Connection, person_ids: Sequence[str]) -> dict[str, str | None]:
    """Return the live person each id (or merged-away alias) is now, None for those gone."""
    found: dict[str, str | None] = dict.fromkeys(person_ids)
    for part in chunks(person_ids, LOOKUP_CHUNK):
        found.update(conn.execute(_PEOPLE_OR_ALIASES, {"ids": part}).all())
    return found


def people_of(conn: Connection, refs: Collection[Ref]) -> dict[Ref, str | None]:
    """Return the person each identity belongs to, None for those nobody holds."""
    found: dict[Ref, str | None] = dict.fromkeys(refs)
    for kind in sorted({ref.kind for ref in refs}):
        values = sorted(ref.value for ref in refs if ref.kind == kind)
        for part in chunks(values, LOOKUP_CHUNK):
            for value, person_id in conn.execute(
                    _PEOPLE_OF_IDENTITIES, {"kind": kind, "values": part}).all():
                found[Ref(kind, value)] = person_id
    return found


def describe(ref: Ref) -> str:
    """Say what a reference named, for an error message."""
    return {"email": "email", "phone": "phone", "ref": "id", "person": "person"}[ref.kind] + \
        f" {ref.value}"


def merge_people(conn: Connection, loser: str, winner: str) -> None:
    """Fold one person into another, keeping all facts and ledger; the loser's id resolves on."""
    for table in (identities, records, ledger, owner_tasks, person_aliases):
        conn.execute(sa.update(table).where(table.c.person_id == loser)
                     .values(person_id=winner))
    conn.execute(sa.insert(person_aliases).values(alias=loser, person_id=winner))
    conn.execute(sa.delete(people).where(people.c.id == loser))
    names.forget(conn, [loser])
