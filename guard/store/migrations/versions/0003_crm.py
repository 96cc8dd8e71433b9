"""CRM connectors: sync bookmarks, what was written back, and the webhook inbox.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sync_bookmarks",
        sa.Column("connector", sa.String(32), primary_key=True),
        sa.Column("stream", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
    )
    op.create_table(
        "crm_writes",
        sa.Column("system", sa.String(32), primary_key=True),
        sa.Column("record_id", sa.String(64), primary_key=True),
        sa.Column("flags_hash", sa.String(64), nullable=False),
        sa.Column("written_at", _TIME, nullable=False),
    )
    op.create_table(
        "hook_inbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("system", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("received_at", _TIME, nullable=False),
        sa.Column("processed_at", _TIME),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_hook_inbox_pending", "hook_inbox", ["processed_at", "id"])
    # Flag write-back reads only the people changed since its last run.
    op.create_index("ix_people_updated_at", "people", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_people_updated_at", table_name="people")
    op.drop_index("ix_hook_inbox_pending", table_name="hook_inbox")
    op.drop_table("hook_inbox")
    op.drop_table("crm_writes")
    op.drop_table("sync_bookmarks")
