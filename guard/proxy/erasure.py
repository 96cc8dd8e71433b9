"""What the right to erasure does to the outbox: no copy of the person's message stays."""

from __future__ import annotations

from collections.abc import Callable, Collection

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from guard.proxy.providers import provider
from guard.store.tables import outbox
from guard.store.util import chunks

_PAGE = 500


def forget_sends(conn: Connection, decision_ids: Collection[str],
                 erased: Callable[[str], bool]) -> int:
    """Take an erased person out of the outbox; return how many rows changed or went.

    A row is theirs when it holds one of their ``decision_ids`` or a recipient
    ``erased`` says is theirs. A row for them alone is deleted, whatever its
    state (held ones would be blocked at release anyway); a Mail Send shared
    with others keeps the others, without the person's address, name or
    personalization. Right to erasure (GDPR Art. 17): no copy stays behind.
    """
    wanted = set(decision_ids)
    theirs: list[str] = []
    after = ""
    while True:
        page = conn.execute(
            sa.select(outbox.c.id, outbox.c.recipients, outbox.c.decision_ids)
            .where(outbox.c.id > after).order_by(outbox.c.id).limit(_PAGE)).all()
        if not page:
            break
        after = page[-1].id
        theirs += [row.id for row in page
                   if wanted.intersection(row.decision_ids or ())
                   or any(erased(str(r)) for r in row.recipients or ())]
    for ids in chunks(theirs, _PAGE):
        rows = conn.execute(sa.select(outbox).where(outbox.c.id.in_(ids))).all()
        for row in rows:
            kept = [r for r in row.recipients or () if not erased(str(r))]
            payload = provider(row.provider).without(row.payload, erased) \
                if kept and len(row.recipients) > 1 else None
            if payload is None:
                conn.execute(outbox.delete().where(outbox.c.id == row.id))
                continue
            conn.execute(outbox.update().where(outbox.c.id == row.id).values(
                payload=payload, recipients=kept,
                checks=[c for c in row.checks or () if not erased(str(c.get("to") or ""))]))
    return len(theirs)
