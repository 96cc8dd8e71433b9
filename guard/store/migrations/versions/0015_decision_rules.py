"""Which rules gave each decision its reasons, so the console lists a rule's decisions fast.

- ``decision_rules``: (rule, time, decision id), one row per rule behind a
  decision's reasons, deleted with the decision (foreign key, cascade), with
  ``ix_decision_rules_decision_id`` for that delete. The upgrade fills it from
  the reasons of every decision already in the ledger; on a large ledger
  ``guard db upgrade`` takes about as long as reading every decision once.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# Every decision's rules, read from its stored reasons by the database itself.
_FILL = {
    "sqlite": """
        INSERT INTO decision_rules (rule, at, decision_id)
        SELECT DISTINCT json_extract(r.value, '$.rule'), l.at, l.id
        FROM ledger AS l, json_each(l.decision, '$.reasons') AS r
        WHERE l.id LIKE :decided ESCAPE '!' AND json_type(l.decision, '$.reasons') = 'array'
          AND json_type(r.value, '$.rule') = 'text'
    """,
    "postgresql": """
        INSERT INTO decision_rules (rule, at, decision_id)
        SELECT DISTINCT r.value ->> 'rule', l.at, l.id
        FROM ledger AS l, json_array_elements(
            CASE WHEN json_typeof(l.decision -> 'reasons') = 'array'
                 THEN l.decision -> 'reasons' ELSE '[]'::json END) AS r
        WHERE l.id LIKE :decided ESCAPE '!' AND json_typeof(r.value -> 'rule') = 'string'
    """,
}


def upgrade() -> None:
    op.create_table(
        "decision_rules",
        sa.Column("rule", sa.String, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("decision_id", sa.String(40),
                  sa.ForeignKey("ledger.id", ondelete="CASCADE"), primary_key=True),
    )
    conn = op.get_bind()
    # Decisions only: touches other systems reported have no reasons.
    conn.execute(sa.text(_FILL[conn.dialect.name]), {"decided": "dec!_%"})
    op.create_index("ix_decision_rules_decision_id", "decision_rules", ["decision_id"])


def downgrade() -> None:
    op.drop_index("ix_decision_rules_decision_id", table_name="decision_rules")
    op.drop_table("decision_rules")
