"""People: when their flags next run out by the calendar.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("people", sa.Column("flags_lapse_at", sa.DateTime(timezone=True)))
    op.create_index("ix_people_flags_lapse_at", "people", ["flags_lapse_at"])


def downgrade() -> None:
    op.drop_index("ix_people_flags_lapse_at", table_name="people")
    op.drop_column("people", "flags_lapse_at")
