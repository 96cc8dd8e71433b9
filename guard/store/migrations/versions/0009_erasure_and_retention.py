"""Erasure finds every copy, retention bounds what is kept, webhook replays are dropped.

- ``ledger.recipient``: the recipient of a decision about no known person (such a row has no
  person id to find it by), indexed where set, so an erasure finds and redacts those rows.
- ``ix_ledger_dry_runs``: dry runs by age, so the worker purges old ones without a scan.
- ``hook_inbox.signature``: a hash of a webhook delivery's signature, unique, so a replayed
  delivery is stored once.
- The erasure salt a store made for itself is deleted when nobody was erased with it; a
  store that did erase people keeps it until the operator moves it to
  ``GUARD_ERASURE_SALT`` (the service refuses to start until then, and deletes it after).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Written as each database's own queries say it (SQLite: 0), so the planner matches them.
_DRY_RUN = {"sqlite": sa.text("committed = 0"), "postgresql": sa.text("committed = false")}
_HAS_RECIPIENT = sa.text("recipient IS NOT NULL")


def upgrade() -> None:
    op.add_column("ledger", sa.Column("recipient", sa.String(320)))
    op.create_index("ix_ledger_recipient", "ledger", ["recipient"],
                    sqlite_where=_HAS_RECIPIENT, postgresql_where=_HAS_RECIPIENT)
    op.create_index("ix_ledger_dry_runs", "ledger", ["created_at"],
                    sqlite_where=_DRY_RUN["sqlite"], postgresql_where=_DRY_RUN["postgresql"])
    op.add_column("hook_inbox", sa.Column("signature", sa.String(64)))
    op.create_index("ux_hook_inbox_signature", "hook_inbox", ["signature"], unique=True)
    op.execute("DELETE FROM settings WHERE name = 'erasure_salt' "
               "AND NOT EXISTS (SELECT 1 FROM erasures)")


def downgrade() -> None:
    op.drop_index("ux_hook_inbox_signature", table_name="hook_inbox")
    op.drop_column("hook_inbox", "signature")
    op.drop_index("ix_ledger_dry_runs", table_name="ledger")
    op.drop_index("ix_ledger_recipient", table_name="ledger")
    op.drop_column("ledger", "recipient")
