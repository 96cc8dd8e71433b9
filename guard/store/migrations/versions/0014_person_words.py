"""The words of people's names, so the console's name search reads an index.

- ``person_words``: each folded word of a person's name (``guard.ingest.names``),
  keyed by person and word, with ``ix_person_words_word`` for the search. The
  upgrade fills it from the stored profiles of everyone not erased; on a
  large store ``guard db upgrade`` takes about as long as reading every
  profile once.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from guard.ingest.names import words

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_BATCH = 5000


def upgrade() -> None:
    word = sa.String(80).with_variant(sa.String(80, collation="C"), "postgresql")
    table = op.create_table(
        "person_words",
        sa.Column("person_id", sa.String(40), primary_key=True),
        sa.Column("word", word, primary_key=True),
    )
    people = sa.table("people", sa.column("id", sa.String), sa.column("profile", sa.JSON),
                      sa.column("erased", sa.Boolean))
    conn = op.get_bind()
    after = ""
    while True:
        batch = conn.execute(sa.select(people.c.id, people.c.profile)
                             .where(people.c.id > after, people.c.erased.is_(False))
                             .order_by(people.c.id).limit(_BATCH)).all()
        if not batch:
            break
        rows = [{"person_id": pid, "word": w} for pid, profile in batch
                for w in words((profile or {}).get("name"))]
        if rows:
            conn.execute(sa.insert(table), rows)
        after = batch[-1].id
    op.create_index("ix_person_words_word", "person_words", ["word", "person_id"])


def downgrade() -> None:
    op.drop_index("ix_person_words_word", table_name="person_words")
    op.drop_table("person_words")
