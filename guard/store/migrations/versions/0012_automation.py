"""Automation steps: where a decision came from, and HubSpot workflow actions that wait.

- ``ledger.via``: the integration a decision was made through (``hubspot_workflow``,
  ``sfmc_journey``, ``braze`` …), so the decision log shows where it came from; empty for
  the API, the proxy and the CLI.
- ``hubspot_actions``: every HubSpot custom workflow action execution by its
  ``callbackId`` with the answer it got, so a retried execution gets the same answer and
  is decided once; a deferred one waits there (``due_at``) until the worker checks it
  again and completes HubSpot's callback.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("ledger", sa.Column("via", sa.String(32)))
    op.create_table(
        "hubspot_actions",
        sa.Column("callback_id", sa.String(255), primary_key=True),
        sa.Column("portal_id", sa.String(32)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("answer", sa.JSON, nullable=False),
        sa.Column("check", sa.JSON),
        sa.Column("decision_id", sa.String(40)),
        sa.Column("outputs", sa.JSON),
        sa.Column("due_at", _TIME),
        sa.Column("expires_at", _TIME),
        sa.Column("tries", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
    )
    op.create_index("ix_hubspot_actions_due", "hubspot_actions", ["state", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_hubspot_actions_due", table_name="hubspot_actions")
    op.drop_table("hubspot_actions")
    op.drop_column("ledger", "via")
