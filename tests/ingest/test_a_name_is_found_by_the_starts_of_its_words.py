"""A name search reads the words of people's names, kept in step with every profile change."""

from __future__ import annotations

import sqlalchemy as sa

from guard.ingest import names
from guard.store.tables import person_words
from tests.conftest import accepted, person


def found(engine, text: str, limit: int = 20) -> list[str]:
    with engine.connect() as conn:
        return names.search(conn, text, limit)


def test_words_fold_case_and_accents_and_join_a_split_surname():
    assert names.words("Anna-Lena MÜLLER") == ["anna", "lena", "annalena", "muller"]
    assert names.words("Seán O'Brien") == ["sean", "o", "brien", "obrien"]
    assert names.words("Straße") == ["strasse"]
    assert names.words("  ") == [] and names.words(None) == [] and names.words(42) == []


def test_each_typed_word_must_start_a_word_of_the_name(store, engine):
    accepted(store.ingest([person("003A", "anna@example.com", name="Anna Müller"),
                           person("003B", "bob@example.com", name="Bob Müllerson"),
                           person("003C", "cleo@example.com", name="Anna Schmidt")]))
    anna, bob, cleo = (store.resolve(f"{n}@example.com") for n in ("anna", "bob", "cleo"))
    assert sorted(found(engine, "mül")) == sorted([anna, bob])
    assert found(engine, "anna muller") == [anna]
    assert found(engine, "MULLER ANNA") == [anna]
    assert sorted(found(engine, "anna")) == sorted([anna, cleo])
    # A word is matched from its start, as CRM search boxes match.
    assert found(engine, "ller") == []
    assert found(engine, "anna zz") == []
    assert len(found(engine, "a", limit=1)) == 1


def test_a_renamed_person_is_found_by_the_new_name_only(store, engine):
    accepted(store.ingest([person("003A", "anna@example.com", name="Anna Weber")]))
    anna = store.resolve("anna@example.com")
    accepted(store.ingest([person("003A", "anna@example.com", name="Anna Schulz")]))
    assert found(engine, "weber") == [] and found(engine, "schulz") == [anna]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(person_words.c.word)
                            .where(person_words.c.person_id == anna)).scalars().all()
    assert sorted(rows) == ["anna", "schulz"]


def test_an_erased_or_merged_away_person_is_not_found_by_name(store, engine):
    accepted(store.ingest([
        person("003A", "anna@example.com", name="Anna Weber"),
        {"type": "person", "source": {"system": "dms", "id": "C-1"}, "name": "Anna W. Dealer",
         "phones": ["+491701234567"]},
        person("003E", "eve@example.com", name="Eve Erased"),
    ]))
    first, second = store.resolve("anna@example.com"), store.resolve("+491701234567")
    accepted(store.ingest([person("003A", "anna@example.com", phones=["+491701234567"],
                                  name="Anna Weber")]))
    merged = store.resolve("anna@example.com")
    loser = second if merged == first else first
    assert loser not in found(engine, "anna")
    assert found(engine, "anna") == [merged]
    eve = store.resolve("eve@example.com")
    accepted(store.ingest([{"type": "erase", "source": {"system": "test", "id": "e1"},
                            "person": {"person": eve}}]))
    assert found(engine, "eve") == [] and found(engine, "erased") == []
