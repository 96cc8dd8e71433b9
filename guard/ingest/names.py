"""People's names as words, kept beside the profile so a name search reads an index.

A search matches a person when every word typed starts one of the words of
their name, the way CRM search boxes match ("mül" finds Anna Müller, "anna
mü" too); case and accents do not matter ("muller" finds Müller).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from guard.store.tables import person_words
from guard.store.util import chunks

WORD_LENGTH = 80
# A name longer than this many words is a data error, not a person's name; its first
# words still find it.
NAME_WORDS = 16
# Typed words beyond these narrow a search no further in practice.
QUERY_WORDS = 4
# How many index entries are counted to tell which typed word is rarest.
_SAMPLE = 200
# People per statement, as a profile rebuild takes them.
_CHUNK = 500

_WORD = re.compile(r"\w+")


def _plain(text: str) -> str:
    """Fold case and drop accents, so "Müller", "MÜLLER" and "Muller" are one word."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in folded if not unicodedata.combining(c))


def words(name: str | None) -> list[str]:
    """Return the words a search finds ``name`` by, each once, in order."""
    if not isinstance(name, str) or not name:
        return []
    found: list[str] = []
    for chunk in _plain(name).split():
        pieces = _WORD.findall(chunk)
        # "O'Brien" is found by "o'brien", "brien" and "obrien".
        for word in pieces + ([''.join(pieces)] if len(pieces) > 1 else []):
            word = word[:WORD_LENGTH]
            if word not in found:
                found.append(word)
    return found[:NAME_WORDS]


def keep(conn: Connection, names: Mapping[str, str | None]) -> None:
    """Store the words of each person's name where they changed (person id → name)."""
    have: dict[str, set[str]] = {pid: set() for pid in names}
    for part in chunks(sorted(names), _CHUNK):
        for pid, word in conn.execute(sa.select(person_words.c.person_id, person_words.c.word)
                                      .where(person_words.c.person_id.in_(part))):
            have[pid].add(word)
    wanted = {pid: words(name) for pid, name in names.items()}
    changed = sorted(pid for pid in names if set(wanted[pid]) != have[pid])
    if not changed:
        return
    forget(conn, changed)
    rows = [{"person_id": pid, "word": word} for pid in changed for word in wanted[pid]]
    if rows:
        conn.execute(sa.insert(person_words), rows)


def forget(conn: Connection, person_ids: Iterable[str]) -> None:
    """Remove people's names from the index (erased, or merged into someone else)."""
    for part in chunks(sorted(set(person_ids)), _CHUNK):
        conn.execute(sa.delete(person_words).where(person_words.c.person_id.in_(part)))


def _after(prefix: str) -> str:
    """Return the least text greater than every text starting with ``prefix``."""
    last = ord(prefix[-1]) + 1
    if 0xD800 <= last < 0xE000:
        last = 0xE000
    return prefix[:-1] + chr(min(last, 0x10FFFF))


def _starting(table, prefix: str):
    # A range, not LIKE: both databases answer it from the word index as it is
    # (PostgreSQL's column compares bytes, so the range holds every prefix match).
    return sa.and_(table.c.word >= prefix, table.c.word < _after(prefix))


def search(conn: Connection, text: str, limit: int) -> list[str]:
    """Return up to ``limit`` people whose name has a word starting with each typed word."""
    typed = words(text)[:QUERY_WORDS]
    if not typed:
        return []
    if len(typed) > 1:
        # The rarest typed word leads (a surname, not "anna"); counting a bounded
        # sample of index entries per word tells which it is.
        def seen(prefix: str) -> int:
            sample = sa.select(sa.literal(1)).where(_starting(person_words, prefix)) \
                .limit(_SAMPLE).subquery()
            return conn.execute(sa.select(sa.func.count()).select_from(sample)).scalar_one()
        typed.sort(key=seen)
    lead, *rest = typed
    other = person_words.alias("other")
    stmt = sa.select(person_words.c.person_id).where(_starting(person_words, lead))
    for prefix in rest:
        stmt = stmt.where(sa.exists().where(other.c.person_id == person_words.c.person_id,
                                            _starting(other, prefix)))
    found: list[str] = []
    # A person whose name has two words starting alike comes back twice.
    for pid in conn.execute(stmt.limit(limit * 2)).scalars():
        if pid not in found:
            found.append(pid)
    return found[:limit]
