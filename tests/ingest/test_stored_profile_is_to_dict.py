"""A rebuild writes the stored profile dict it builds alongside the profile: same as to_dict.

The rebuild makes each profile's dict itself, reusing the dicts of facts an
account's members share; what it writes must be ``Profile.to_dict()`` of the
profile it built, key for key and in the same order.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from guard.demo.sample import generate
from guard.ingest import profiles
from guard.store.tables import people
from tests.conftest import NOW
from tests.ingest.test_bulk_matches_one_at_a_time import book


def test_the_written_dict_is_the_profiles_to_dict(store, engine, policy):
    for batch in [generate(seed=7, people=150).events, *book()]:
        store.ingest(batch)
    with engine.connect() as conn:
        ids = sorted(conn.execute(sa.select(people.c.id).where(people.c.erased.is_(False)))
                     .scalars())
        rows = {pid: [] for pid in ids}
        for row in conn.execute(profiles._OWN_RECORDS, {"ids": ids}).mappings():
            rows[row["person_id"]].append(row)
        shared: dict = {}
        account_cache: dict = {}
        checked = with_account = 0
        for pid in ids:
            account_id = profiles._account_of(rows[pid])
            entry = None
            if account_id:
                if account_id not in account_cache:
                    account_cache.update(profiles._accounts_records(conn, [account_id]))
                entry = account_cache[account_id]
            alone = profiles.build_profile(conn, pid)
            bare = conn.execute(profiles._BARE_CONSENTS, {
                "addresses": profiles._addresses(rows[pid]) or [""]}).mappings().all()
            bare = [row for row in bare if row["person_id"] is None]
            profile, data = profiles._assemble_dict(pid, rows[pid], entry, bare, shared=shared)
            assert profile == alone
            assert json.dumps(data) == json.dumps(profile.to_dict())
            checked += 1
            with_account += bool(profile.account and len(profile.sources) > 1)
    assert checked > 100 and with_account >= 2


def test_a_rebuild_stores_exactly_to_dict_of_the_profile_built_alone(store, engine, policy):
    for batch in [generate(seed=8, people=120).events, *book()]:
        store.ingest(batch)
    with engine.begin() as conn:
        ids = list(conn.execute(sa.select(people.c.id)).scalars())
        profiles.rebuild(conn, ids, policy, NOW)
    with engine.connect() as conn:
        for pid, stored, erased in conn.execute(
                sa.select(people.c.id, people.c.profile, people.c.erased)):
            if erased:
                continue
            alone = profiles.build_profile(conn, pid).to_dict()
            # The stored JSON keeps to_dict's key order too.
            assert json.dumps(stored) == json.dumps(alone)
