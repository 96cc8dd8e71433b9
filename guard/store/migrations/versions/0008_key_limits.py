"""API keys: allow-lists of senders and purposes, and revocation.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null lists mean no limit, so every key made before keeps working as it did.
    op.add_column("api_keys", sa.Column("senders", sa.JSON))
    op.add_column("api_keys", sa.Column("purposes", sa.JSON))
    op.add_column("api_keys", sa.Column("revoked_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("purposes")
        batch.drop_column("senders")
