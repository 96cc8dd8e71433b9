"""The store: people, identities, records, accounts, campaigns, ledger, erasures, tasks, keys.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("profile", sa.JSON, nullable=False),
        sa.Column("flags", sa.JSON),
        sa.Column("flags_hash", sa.String(64)),
        sa.Column("erased", sa.Boolean, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_table(
        "person_aliases",
        sa.Column("alias", sa.String(40), primary_key=True),
        sa.Column("person_id", sa.String(40), nullable=False),
    )
    op.create_index("ix_person_aliases_person_id", "person_aliases", ["person_id"])
    op.create_table(
        "identities",
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("value", sa.String(320), primary_key=True),
        sa.Column("person_id", sa.String(40), nullable=False),
    )
    op.create_index("ix_identities_person_id", "identities", ["person_id"])
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("ref", sa.String(320), nullable=False, unique=True),
        sa.Column("account", sa.JSON),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_table(
        "records",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source_system", sa.String(64), nullable=False),
        sa.Column("source_type", sa.String(64), nullable=False),
        sa.Column("source_id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("person_id", sa.String(40)),
        sa.Column("account_id", sa.String(40)),
        sa.Column("address", sa.String(320)),
        sa.Column("updated_at", TIME, nullable=False),
        sa.UniqueConstraint("source_system", "source_type", "source_id", "type",
                            name="uq_records_source"),
    )
    op.create_index("ix_records_person_id", "records", ["person_id"])
    op.create_index("ix_records_account_id", "records", ["account_id"])
    op.create_index("ix_records_address", "records", ["address"])
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("campaign", sa.JSON, nullable=False),
        sa.Column("record_key", sa.String(400), nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_table(
        "ledger",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("person_id", sa.String(40)),
        sa.Column("at", TIME, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("sender", sa.String(128), nullable=False),
        sa.Column("campaign", sa.String(255)),
        sa.Column("template", sa.String(255)),
        sa.Column("product", sa.String(255)),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("committed", sa.Boolean, nullable=False),
        sa.Column("attempt", sa.JSON),
        sa.Column("decision", sa.JSON),
        sa.Column("policy_version", sa.String(80)),
        sa.Column("source", sa.JSON),
        sa.Column("record_key", sa.String(400), unique=True),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_index("ix_ledger_person_at", "ledger", ["person_id", "at"])
    op.create_table(
        "erasures",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("erased_at", TIME, nullable=False),
    )
    op.create_table(
        "settings",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "owner_tasks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("person_id", sa.String(40)),
        sa.Column("decision_id", sa.String(40)),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("rule", sa.String(128)),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("dedupe_key", sa.String(255), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("done_at", TIME),
        sa.Column("result", sa.JSON),
    )
    op.create_index("ix_owner_tasks_person_id", "owner_tasks", ["person_id"])
    op.create_index("ix_owner_tasks_status", "owner_tasks", ["status", "created_at"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", sa.String(255), nullable=False),
        sa.Column("sender", sa.String(128)),
        sa.Column("purpose", sa.String(64)),
        sa.Column("created_at", TIME, nullable=False),
    )


def downgrade() -> None:
    for table in ("api_keys", "owner_tasks", "settings", "erasures", "ledger", "campaigns",
                  "records", "accounts", "identities", "person_aliases", "people"):
        op.drop_table(table)
