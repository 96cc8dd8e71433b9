"""Every table of the store, in one place: what the migrations build, the code reads.

A change here needs a migration in ``guard/store/migrations/versions``; a test
compares the two.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
_TIME = sa.DateTime(timezone=True)

people = sa.Table(
    "people",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("profile", sa.JSON, nullable=False),
    sa.Column("flags", sa.JSON),
    sa.Column("flags_hash", sa.String(64)),
    # When a flag line next runs out by the calendar (the worker refreshes the flags then).
    sa.Column("flags_lapse_at", _TIME, index=True),
    sa.Column("erased", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", _TIME, nullable=False),
    # The CRM write-back reads people whose flags changed since its watermark.
    sa.Column("updated_at", _TIME, nullable=False, index=True),
)

# Each word of a person's name, folded (guard.ingest.names), so a name search reads an
# index instead of every profile. PostgreSQL compares the words byte by byte ("C"), as
# SQLite does, so a prefix is one range of the index.
_WORD = sa.String(80).with_variant(sa.String(80, collation="C"), "postgresql")
person_words = sa.Table(
    "person_words",
    metadata,
    sa.Column("person_id", sa.String(40), primary_key=True),
    sa.Column("word", _WORD, primary_key=True),
    sa.Index("ix_person_words_word", "word", "person_id"),
)

# A merged-away person id keeps resolving to the person it was merged into.
person_aliases = sa.Table(
    "person_aliases",
    metadata,
    sa.Column("alias", sa.String(40), primary_key=True),
    sa.Column("person_id", sa.String(40), nullable=False, index=True),
)

# kind: email | phone | ref ("salesforce:003…", "dms:C-1001")
identities = sa.Table(
    "identities",
    metadata,
    sa.Column("kind", sa.String(8), primary_key=True),
    sa.Column("value", sa.String(320), primary_key=True),
    sa.Column("person_id", sa.String(40), nullable=False, index=True),
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("ref", sa.String(320), nullable=False, unique=True),
    sa.Column("account", sa.JSON),
    sa.Column("updated_at", _TIME, nullable=False),
)

# Every event as received, so profiles can be rebuilt and ingestion is idempotent.
records = sa.Table(
    "records",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source_system", sa.String(64), nullable=False),
    sa.Column("source_type", sa.String(64), nullable=False, default=""),
    sa.Column("source_id", sa.String(255), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("person_id", sa.String(40), index=True),
    sa.Column("account_id", sa.String(40), index=True),
    # A bare-address consent: the normalised email or phone it is about.
    sa.Column("address", sa.String(320), index=True),
    sa.Column("updated_at", _TIME, nullable=False),
    sa.UniqueConstraint("source_system", "source_type", "source_id", "type",
                        name="uq_records_source"),
)

campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("campaign", sa.JSON, nullable=False),
    sa.Column("record_key", sa.String(400), nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
)

ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("person_id", sa.String(40)),
    sa.Column("at", _TIME, nullable=False),
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
    # A touch reported by another system: its record, so a re-sync updates it.
    sa.Column("source", sa.JSON),
    sa.Column("record_key", sa.String(400), unique=True),
    sa.Column("created_at", _TIME, nullable=False),
    # A decision about no known person: its recipient, by which an erasure finds the row.
    sa.Column("recipient", sa.String(320)),
    # The integration a decision was made through (hubspot_workflow, sfmc_journey, braze …).
    sa.Column("via", sa.String(32)),
    # A check reads a person's committed entries since a time. Dry runs (screens, checks
    # with commit false) are recorded too but never counted: with "committed" before "at"
    # a check's range holds only what it counts, however many lists were screened.
    sa.Index("ix_ledger_person_committed_at", "person_id", "committed", "at"),
    sa.Index("ix_ledger_recipient", "recipient",
             sqlite_where=sa.text("recipient IS NOT NULL"),
             postgresql_where=sa.text("recipient IS NOT NULL")),
    # Dry runs by age: the worker purges those past GUARD_DRY_RUN_RETENTION_DAYS.
    sa.Index("ix_ledger_dry_runs", "created_at", sqlite_where=sa.text("committed = 0"),
             postgresql_where=sa.text("committed = false")),
    # Committed entries by time: the worker purges those past the audit period (0013).
    sa.Index("ix_ledger_committed_at", "at", sqlite_where=sa.text("committed = 1"),
             postgresql_where=sa.text("committed = true")),
)

# Keyed hashes (HMAC-SHA256 with GUARD_ERASURE_SALT, a secret kept outside the store) of
# the addresses and CRM ids of people who exercised the right to erasure.
erasures = sa.Table(
    "erasures",
    metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("erased_at", _TIME, nullable=False),
)

# CRM records of an erased person that still have to be told "Do not contact"; a row is
# deleted once the CRM has it, so the guard forgets the record ids as well.
erasure_notices = sa.Table(
    "erasure_notices",
    metadata,
    sa.Column("system", sa.String(32), primary_key=True),
    sa.Column("record_id", sa.String(64), primary_key=True),
    sa.Column("erased_at", _TIME, nullable=False),
)

# Webhook deliveries are stored before they are acknowledged, then processed by the
# worker (guard.crm): HubSpot gives up on slow endpoints, and a crash must not lose a change.
hook_inbox = sa.Table(
    "hook_inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("system", sa.String(32), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("received_at", _TIME, nullable=False),
    sa.Column("processed_at", _TIME),
    sa.Column("error", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    # SHA-256 of the delivery's signature: a replay of a signed delivery is stored once.
    sa.Column("signature", sa.String(64)),
    sa.Index("ix_hook_inbox_pending", "processed_at", "id"),
    sa.Index("ux_hook_inbox_signature", "signature", unique=True),
)

# The states of a hubspot_actions row.
ANSWERED = "answered"    # the answer was final (allow, block, reroute, a bad input)
WAITING = "waiting"      # deferred: HubSpot holds the contact until the callback completes
DECIDED = "decided"      # checked again: ``outputs`` are ready to complete the callback with
COMPLETED = "completed"  # HubSpot took the outputs
EXPIRED = "expired"      # HubSpot stopped waiting before the callback could be completed
FAILED = "failed"        # HubSpot refused the completion for good
# Executions HubSpot will not ask about again; purged after GUARD_INBOX_RETENTION_DAYS.
ACTIONS_FINISHED = (ANSWERED, COMPLETED, EXPIRED, FAILED)
# HubSpot custom workflow action executions by callbackId (guard.automation): the answer
# each got, so a retry gets it again; a deferred one waits for the worker to check it again
# at ``due_at`` and complete HubSpot's callback with ``outputs``.
hubspot_actions = sa.Table(
    "hubspot_actions",
    metadata,
    sa.Column("callback_id", sa.String(255), primary_key=True),
    sa.Column("portal_id", sa.String(32)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("answer", sa.JSON, nullable=False),
    sa.Column("check", sa.JSON),
    sa.Column("decision_id", sa.String(40)),
    sa.Column("outputs", sa.JSON),
    sa.Column("due_at", _TIME),
    sa.Column("expires_at", _TIME),
    sa.Column("tries", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
    sa.Index("ix_hubspot_actions_due", "state", "due_at"),
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

owner_tasks = sa.Table(
    "owner_tasks",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("person_id", sa.String(40), index=True),
    sa.Column("decision_id", sa.String(40)),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("rule", sa.String(128)),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("dedupe_key", sa.String(255), nullable=False, unique=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("done_at", _TIME),
    sa.Column("result", sa.JSON),
    sa.Index("ix_owner_tasks_status", "status", "created_at"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", sa.String(255), nullable=False),
    sa.Column("sender", sa.String(128)),
    sa.Column("purpose", sa.String(64)),
    # Allow-lists (names or patterns such as ``dealer:*``); null: no limit.
    sa.Column("senders", sa.JSON),
    sa.Column("purposes", sa.JSON),
    sa.Column("created_at", _TIME, nullable=False),
    # A revoked key authenticates nothing, and the worker drops what it queued.
    sa.Column("revoked_at", _TIME),
)

# A provider request answered under an Idempotency-Key, per API key: a retry of it gets the
# same answer (``response``, or the reply the provider gave ``outbox_id``) and nothing else.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key_id", sa.String(40), primary_key=True),
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("response", sa.JSON, nullable=False),
    sa.Column("outbox_id", sa.String(40)),
    # The decisions the request made, space-separated: erasure finds a person's answers by them.
    sa.Column("decision_ids", sa.Text, nullable=False),
    sa.Column("created_at", _TIME, nullable=False, index=True),
)

sync_bookmarks = sa.Table(
    "sync_bookmarks",
    metadata,
    sa.Column("connector", sa.String(32), primary_key=True),
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
)
# Pseudo-streams (the guard's own, never a CRM's): each CRM's flag write-back watermark,
# and what its last sync run did (when, records, refusals, error) for the console.
FLAGS_STREAM = "guard:flags"
LAST_RUN_STREAM = "guard:last_run"
# Where a bookmark is one of the CRM's own streams, not one of the guard's.
CRM_STREAM = sync_bookmarks.c.stream.not_like("guard:%")

# What the guard last wrote to each CRM record, so unchanged flags are never rewritten.
crm_writes = sa.Table(
    "crm_writes",
    metadata,
    sa.Column("system", sa.String(32), primary_key=True),
    sa.Column("record_id", sa.String(64), primary_key=True),
    sa.Column("flags_hash", sa.String(64), nullable=False),
    sa.Column("written_at", _TIME, nullable=False),
)

# Every send the guard makes, from first try to delivery (see guard.proxy.outbox), and the
# states of its rows.
HELD, CLAIMED, SENDING = "held", "claimed", "sending"
DONE_SENT, DONE_REJECTED, DROPPED, UNKNOWN = "sent", "rejected", "dropped", "unknown"
STATUSES = (HELD, CLAIMED, SENDING, DONE_SENT, DONE_REJECTED, DROPPED, UNKNOWN)
# Rows that will never be sent again; the worker purges them after
# GUARD_OUTBOX_RETENTION_DAYS. An unknown row waits for a human, so it stays.
FINISHED = (DONE_SENT, DONE_REJECTED, DROPPED)
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("idempotency_key", sa.String(64), nullable=False, unique=True),
    sa.Column("provider", sa.String(16), nullable=False),
    sa.Column("resource", sa.String(16), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("recipients", sa.JSON, nullable=False),
    sa.Column("checks", sa.JSON, nullable=False),
    sa.Column("defaults", sa.JSON, nullable=False),
    sa.Column("decision_ids", sa.JSON, nullable=False),
    sa.Column("key_id", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("needs_check", sa.Boolean, nullable=False, default=False),
    sa.Column("not_before", _TIME, nullable=False),
    sa.Column("tries", sa.Integer, nullable=False, default=0),
    sa.Column("claim_token", sa.String(40)),
    sa.Column("claimed_at", _TIME),
    sa.Column("last_error", sa.Text),
    sa.Column("response_status", sa.Integer),
    sa.Column("response_body", sa.Text),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
    sa.Index("ix_outbox_due", "status", "not_before"),
)

# The admin console (guard.console): sign-in sessions, the audit log of what was changed
# through it, stored policy versions, and when each API key was last used.
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(40), nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("expires_at", _TIME, nullable=False),
    # Set on sign-out: the cookie stops working on every replica at once.
    sa.Column("ended_at", _TIME),
)

console_audit = sa.Table(
    "console_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", _TIME, nullable=False, index=True),
    sa.Column("key_id", sa.String(40), nullable=False),
    sa.Column("key_name", sa.String(255), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(255)),
    sa.Column("detail", sa.Text),
)

# Policies published from the console when GUARD_POLICY names no file; the settings row
# "policy_version" names the one in force, so every replica reads the same one.
policy_versions = sa.Table(
    "policy_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version", sa.String(80), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("key_id", sa.String(40)),
    sa.Column("key_name", sa.String(255)),
)

# Decisions per UTC day and verdict, counted once after the day ended (the console's
# overview); every verdict of a counted day has a row, zeros too.
console_days = sa.Table(
    "console_days",
    metadata,
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("verdict", sa.String(16), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)

key_uses = sa.Table(
    "key_uses",
    metadata,
    sa.Column("key_id", sa.String(40), primary_key=True),
    sa.Column("last_used_at", _TIME, nullable=False),
)

# The console's decision list pages newest first through the whole ledger; its overview
# counts verdicts per day from the index alone.
sa.Index("ix_ledger_at_id", ledger.c.at, ledger.c.id, ledger.c.verdict)

# Which rules gave a decision its reasons, by rule and time: the console lists a rule's
# decisions newest first from this index instead of reading every decision's reasons.
# Written with the decision (guard.store.ledger.record_many); gone with it (cascade).
decision_rules = sa.Table(
    "decision_rules",
    metadata,
    sa.Column("rule", sa.String, primary_key=True),
    sa.Column("at", _TIME, primary_key=True),
    sa.Column("decision_id", sa.String(40), sa.ForeignKey("ledger.id", ondelete="CASCADE"),
              primary_key=True, index=True),
)

# One row per one-click unsubscribe link used: a replayed POST finds its row and changes
# nothing more (RFC 8058 lets mailbox providers send the same POST again).
unsubscribes = sa.Table(
    "unsubscribes",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("recorded_at", _TIME, nullable=False),
)

# Requests per minute to the preference pages by link and by client address, counted in
# the store so every replica shares one count.
rate_windows = sa.Table(
    "rate_windows",
    metadata,
    sa.Column("key", sa.String(80), primary_key=True),
    sa.Column("window_start", _TIME, nullable=False),
    sa.Column("hits", sa.Integer, nullable=False),
)
