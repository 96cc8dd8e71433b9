"""What a store holds, compared across runs: people are named by their first identity."""

from __future__ import annotations

import sqlalchemy as sa

from guard.store.tables import accounts, identities, ledger, people, records
from policies.model import parse_datetime


def store_snapshot(engine) -> dict:
    """Return everything events can change, with people named by identity (ids are random)."""
    with engine.connect() as conn:
        names: dict[str, str] = {}
        for person_id, kind, value in conn.execute(
                sa.select(identities.c.person_id, identities.c.kind, identities.c.value)
                .order_by(identities.c.kind, identities.c.value)):
            names.setdefault(person_id, f"{kind}:{value}")

        def name(person_id):
            return names.get(person_id, "?") if person_id else None

        return {
            "identities": sorted((kind, value, name(pid)) for pid, kind, value in conn.execute(
                sa.select(identities.c.person_id, identities.c.kind, identities.c.value))),
            "records": sorted(
                (r.source_system, r.source_type, r.source_id, r.type, str(r.payload),
                 name(r.person_id), r.account_id or "", r.address or "")
                for r in conn.execute(sa.select(records))),
            "ledger": sorted((r.record_key or "", name(r.person_id),
                              parse_datetime(r.at).isoformat(), r.channel)
                             for r in conn.execute(sa.select(ledger))),
            "accounts": sorted((r.ref, str(r.account)) for r in conn.execute(sa.select(accounts))),
            "profiles": sorted(
                (name(r.id), str({k: v for k, v in r.profile.items() if k != "id"}),
                 str(r.flags), r.flags_hash)
                for r in conn.execute(sa.select(people)) if not r.erased),
        }
