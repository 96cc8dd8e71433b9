"""Fill stores with a seeded population: ingest a template, then replicate it to any size.

Ingesting events one by one is the product's own path, but far too slow to
build a million people for every run. So a template of a few hundred people
goes in through ``Guard.ingest`` (the store computes their profiles and
ledgers itself), and the rows it wrote are copied with shifted addresses
until the store holds as many people as asked: person i + k·n is person i's
double, reachable at ``email_of(i + k·n)`` and ``phone_of(i + k·n)``, named
"Person i + k·n".
"""

from __future__ import annotations

import atexit
import copy
import json
import re
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.figure import NotMeasured
from bench.population import EPOCH, email_of, people_events, phone_of
from guard.ingest.names import words

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
_CHUNK = 2_000
_EMAIL = re.compile(r"^person(\d+)@example\.com$")
_PHONE = re.compile(r"^\+4915(\d{9})$")
_REF = re.compile(r"^dms:C-(\d+)$")
_NAME = re.compile(r"^Person (\d+)$")


TEMPLATE_PEOPLE = 200
_templates: dict[int, Engine] = {}


def template_store(policy, people: int = TEMPLATE_PEOPLE) -> Engine:
    """Return the template store of ``people``, ingested once per run and removed at exit."""
    if people not in _templates:
        directory = tempfile.TemporaryDirectory(prefix="bench-template-")
        engine = ingest_template(Path(directory.name), people, policy)
        atexit.register(directory.cleanup)
        atexit.register(engine.dispose)
        _templates[people] = engine
    return _templates[people]


def ingest_template(directory: Path, people: int, policy) -> Engine:
    """Ingest the first ``people`` of the population into a fresh SQLite store."""
    from guard.checks.service import Guard
    from guard.store.engine import make_engine
    from guard.store.migrate import upgrade

    engine = make_engine(f"sqlite:///{directory / 'template.db'}")
    upgrade(engine)
    guard = Guard(engine, policy, clock=lambda: EPOCH)
    batch: list[dict] = []
    for event in people_events(people):
        batch.append(event)
        if len(batch) == 1_000:
            _ingest(guard, batch)
            batch = []
    if batch:
        _ingest(guard, batch)
    return engine


def _ingest(guard, batch: list[dict]) -> None:
    result = guard.ingest(batch)
    if result["rejected"]:
        raise NotMeasured(f"the store rejected generated events: {result['rejected'][:2]}")


@contextmanager
def store(backend: str) -> Iterator[Engine]:
    """Yield an empty, migrated store on ``backend`` (sqlite or postgresql); remove it after."""
    from guard.store.engine import make_engine
    from guard.store.migrate import upgrade

    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-") as directory:
            engine = make_engine(f"sqlite:///{Path(directory) / 'guard.db'}")
            upgrade(engine)
            try:
                yield engine
            finally:
                engine.dispose()
        return
    try:
        admin = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect: say so
        raise NotMeasured(f"PostgreSQL at {POSTGRES_URL} unreachable: "
                          f"{str(exc).splitlines()[0]}") from None
    schema = f"bench_{secrets.token_hex(5)}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    url = f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}"
    engine = make_engine(url)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'drop schema "{schema}" cascade'))
        admin.dispose()


def replicate(template: Engine, target: Engine, people: int) -> None:
    """Copy the template's rows into ``target`` until it holds ``people`` people."""
    if target.dialect.name == "sqlite":
        _replicate_sqlite(template, target, people)
    else:
        _replicate_rows(template, target, people)


def _replicate_sqlite(template: Engine, target: Engine, people: int) -> None:
    """Copy SQLite to SQLite as stored (JSON text, time strings): a million people in a minute.

    Going through SQLAlchemy would decode and re-encode every JSON and time
    value of millions of rows; the stored form is already the target's.
    """
    source = template.raw_connection()
    try:
        def rows(table: str) -> tuple[list[str], list[tuple]]:
            cursor = source.cursor()
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - our own table names
            return [d[0] for d in cursor.description], cursor.fetchall()

        tables = {name: rows(name) for name in
                  ("people", "identities", "ledger", "accounts", "campaigns",
                   "decision_rules")}
        tables["person_words"] = (["person_id", "word"], [])
    finally:
        source.close()
    (person_cols, persons), (id_cols, ids), (ledger_cols, entries) = (
        tables["people"], tables["identities"], tables["ledger"])
    at = {name: {c: i for i, c in enumerate(cols)} for name, (cols, _) in tables.items()}
    index = {row[at["identities"]["person_id"]]: int(m.group(1)) for row in ids
             if row[at["identities"]["kind"]] == "ref"
             and (m := _REF.match(row[at["identities"]["value"]]))}
    size = len(index)
    if size == 0:
        raise NotMeasured("the template store holds no people")
    ids_of: dict[str, list[tuple]] = {}
    for row in ids:
        ids_of.setdefault(row[at["identities"]["person_id"]], []).append(row)
    ledger_of: dict[str, list[tuple]] = {}
    for row in entries:
        ledger_of.setdefault(row[at["ledger"]["person_id"]], []).append(row)
    r_id = at["decision_rules"]["decision_id"]
    rules_of: dict[str, list[tuple]] = {}
    for row in tables["decision_rules"][1]:
        rules_of.setdefault(row[r_id], []).append(row)
    p_id, p_profile = at["people"]["id"], at["people"]["profile"]
    i_person, i_value = at["identities"]["person_id"], at["identities"]["value"]
    l_id, l_person, l_key = at["ledger"]["id"], at["ledger"]["person_id"], \
        at["ledger"]["record_key"]
    profiles = {row[p_id]: json.loads(row[p_profile]) for row in persons}
    out: dict[str, list[tuple]] = {"people": [], "identities": [], "ledger": [],
                                   "decision_rules": [], "person_words": []}
    cols = {"people": person_cols, "identities": id_cols, "ledger": ledger_cols,
            "decision_rules": tables["decision_rules"][0],
            "person_words": ["person_id", "word"]}
    raw = target.raw_connection()
    try:
        cursor = raw.cursor()

        def flush() -> None:
            for table, batch in out.items():
                if batch:
                    marks = ", ".join("?" * len(cols[table]))
                    cursor.executemany(
                        f"INSERT INTO {table} ({', '.join(cols[table])}) "  # noqa: S608
                        f"VALUES ({marks})", batch)
                    batch.clear()

        # Secondary indexes are built once at the end, not row by row in random order.
        cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql "
                       "IS NOT NULL AND tbl_name IN ('people', 'identities', 'ledger', "
                       "'decision_rules', 'person_words')")
        indexes = cursor.fetchall()
        cursor.execute("PRAGMA cache_size=-500000")
        cursor.execute("BEGIN IMMEDIATE")
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        for name in ("accounts", "campaigns"):
            names, fixed = tables[name]
            out.setdefault(name, []).extend(fixed)
            cols[name] = names
        for k in range(-(-people // size)):
            offset = k * size
            for row in persons:
                i = index.get(row[p_id])
                if i is None or i + offset >= people:
                    continue
                person_id = row[p_id] if k == 0 else f"{row[p_id]}_{k}"
                profile = profiles[row[p_id]]
                shifted = _shifted(profile, person_id, offset)
                person = list(row)
                person[p_id], person[p_profile] = person_id, json.dumps(shifted)
                out["people"].append(tuple(person))
                out["person_words"] += [(person_id, w) for w in words(shifted.get("name"))]
                for ident in ids_of.get(row[p_id], ()):
                    copy_ = list(ident)
                    copy_[i_person], copy_[i_value] = person_id, _shift(ident[i_value], offset)
                    out["identities"].append(tuple(copy_))
                for entry in ledger_of.get(row[p_id], ()):
                    copy_ = list(entry)
                    copy_[l_id], copy_[l_person] = f"{entry[l_id]}_{k}", person_id
                    if entry[l_key]:
                        copy_[l_key] = f"{entry[l_key]}#{k}"
                    out["ledger"].append(tuple(copy_))
                    for rule in rules_of.get(entry[l_id], ()):
                        kept = list(rule)
                        kept[r_id] = copy_[l_id]
                        out["decision_rules"].append(tuple(kept))
            if len(out["people"]) >= 50_000:
                flush()
        flush()
        for _, sql in indexes:
            cursor.execute(sql)
        raw.commit()
    finally:
        raw.close()


def _replicate_rows(template: Engine, target: Engine, people: int) -> None:
    from guard.store.tables import (
        accounts,
        campaigns,
        decision_rules,
        identities,
        ledger,
        person_words,
    )
    from guard.store.tables import people as people_table

    with template.connect() as conn:
        persons = [dict(r) for r in conn.execute(sa.select(people_table)).mappings()]
        ids = [dict(r) for r in conn.execute(sa.select(identities)).mappings()]
        entries = [dict(r) for r in conn.execute(sa.select(ledger)).mappings()]
        rules = [dict(r) for r in conn.execute(sa.select(decision_rules)).mappings()]
        fixed = {t: [dict(r) for r in conn.execute(sa.select(t)).mappings()]
                 for t in (accounts, campaigns)}
    index = {row["person_id"]: int(m.group(1)) for row in ids
             if row["kind"] == "ref" and (m := _REF.match(row["value"]))}
    size = len(index)
    if size == 0:
        raise NotMeasured("the template store holds no people")
    ids_of: dict[str, list[dict]] = {}
    for row in ids:
        ids_of.setdefault(row["person_id"], []).append(row)
    ledger_of: dict[str, list[dict]] = {}
    for row in entries:
        ledger_of.setdefault(row["person_id"], []).append(row)
    rules_of: dict[str, list[dict]] = {}
    for row in rules:
        rules_of.setdefault(row["decision_id"], []).append(row)
    with target.begin() as conn:
        for table, rows in fixed.items():
            if rows:
                conn.execute(sa.insert(table), [_aware(r) for r in rows])
    copies = -(-people // size)
    # In insert order: a decision before the rules that refer to it.
    out: dict[sa.Table, list[dict]] = {people_table: [], identities: [], ledger: [],
                                       decision_rules: [], person_words: []}
    for k in range(copies):
        for row in persons:
            i = index.get(row["id"])
            if i is None or i + k * size >= people:
                continue
            person_id = row["id"] if k == 0 else f"{row['id']}_{k}"
            offset = k * size
            profile = _shifted(copy.deepcopy(row["profile"]), person_id, offset)
            out[people_table].append(_aware({**row, "id": person_id, "profile": profile}))
            out[person_words] += [{"person_id": person_id, "word": w}
                                  for w in words(profile.get("name"))]
            for ident in ids_of.get(row["id"], ()):
                out[identities].append({**ident, "person_id": person_id,
                                        "value": _shift(ident["value"], offset)})
            for entry in ledger_of.get(row["id"], ()):
                key = entry["record_key"]
                out[ledger].append(_aware({
                    **entry, "id": f"{entry['id']}_{k}", "person_id": person_id,
                    "record_key": f"{key}#{k}" if key else None}))
                out[decision_rules] += [_aware({**rule, "decision_id": f"{entry['id']}_{k}"})
                                        for rule in rules_of.get(entry["id"], ())]
        if sum(len(v) for v in out.values()) >= _CHUNK:
            _flush(target, out)
    _flush(target, out)


def _flush(target: Engine, out: dict[sa.Table, list[dict]]) -> None:
    with target.begin() as conn:
        for table, rows in out.items():
            if rows:
                conn.execute(sa.insert(table), rows)
            rows.clear()


def _shifted(profile: dict, person_id: str, offset: int) -> dict:
    """Return person i's stored profile as person (i + offset)'s."""
    name = profile.get("name")
    if offset and name and (m := _NAME.match(name)):
        name = f"Person {int(m.group(1)) + offset}"
    return {**profile, "id": person_id, "name": name,
            "emails": [_shift(v, offset) for v in profile.get("emails") or ()],
            "phones": [_shift(v, offset) for v in profile.get("phones") or ()]}


def _shift(value: str, offset: int) -> str:
    """Return person i's address or reference as person (i + offset)'s."""
    if offset == 0:
        return value
    if m := _EMAIL.match(value):
        return email_of(int(m.group(1)) + offset)
    if m := _PHONE.match(value):
        return phone_of(int(m.group(1)) + offset)
    if m := _REF.match(value):
        return f"dms:C-{int(m.group(1)) + offset}"
    return f"{value}#{offset}"


def _aware(row: dict) -> dict:
    # SQLite hands times back without an offset; they are UTC, and PostgreSQL
    # must be told so rather than assume its own time zone.
    return {k: (v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v)
            for k, v in row.items()}
