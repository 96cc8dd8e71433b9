"""Committed ledger entries by time, so the worker purges those past the audit period.

- ``ix_ledger_committed_at``: committed entries by contact time (partial, as
  ``ix_ledger_dry_runs`` is for dry runs), so the purge of entries older than
  the audit period and every rule's window reads only the rows it deletes. On
  a large ledger ``guard db upgrade`` takes as long as building it.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Written as each database's own queries say it (SQLite: 1), so the planner matches them.
_COMMITTED = {"sqlite": sa.text("committed = 1"), "postgresql": sa.text("committed = true")}


def upgrade() -> None:
    op.create_index("ix_ledger_committed_at", "ledger", ["at"],
                    sqlite_where=_COMMITTED["sqlite"], postgresql_where=_COMMITTED["postgresql"])


def downgrade() -> None:
    op.drop_index("ix_ledger_committed_at", table_name="ledger")
