"""Ledger: a person's entries indexed by committed before time, so dry runs stay out of checks.

A check counts a person's committed entries since a time. Indexed on (person, at) alone,
every dry-run decision in that window (each screened list records one per recipient) had
to be fetched from the table to be skipped; with committed between them, the check's range
holds only the entries it counts.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_ledger_person_committed_at", "ledger",
                    ["person_id", "committed", "at"])
    op.drop_index("ix_ledger_person_at", table_name="ledger")


def downgrade() -> None:
    op.create_index("ix_ledger_person_at", "ledger", ["person_id", "at"])
    op.drop_index("ix_ledger_person_committed_at", table_name="ledger")
