"""The admin console: sessions, audit log, policy versions, daily counts, key use, ledger by time.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.Column("ended_at", _TIME),
    )
    op.create_table(
        "console_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", _TIME, nullable=False, index=True),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("key_name", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255)),
        sa.Column("detail", sa.Text),
    )
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("version", sa.String(80), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("key_id", sa.String(40)),
        sa.Column("key_name", sa.String(255)),
    )
    op.create_table(
        "console_days",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("verdict", sa.String(16), primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )
    op.create_table(
        "key_uses",
        sa.Column("key_id", sa.String(40), primary_key=True),
        sa.Column("last_used_at", _TIME, nullable=False),
    )
    op.create_index("ix_ledger_at_id", "ledger", ["at", "id", "verdict"])


def downgrade() -> None:
    op.drop_index("ix_ledger_at_id", table_name="ledger")
    op.drop_table("key_uses")
    op.drop_table("console_days")
    op.drop_table("policy_versions")
    op.drop_table("console_audit")
    op.drop_table("console_sessions")
