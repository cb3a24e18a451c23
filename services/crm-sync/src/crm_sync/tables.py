"""crm-sync's tables (schema ``crm_sync``); no other service reads them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Integer,
    MetaData,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from pulse_shared.offsets import offsets_table

SCHEMA = "crm_sync"
metadata = MetaData(schema=SCHEMA)

#: What crm-sync knows of each account: its latest scores and its latest answer (the inputs of the properties).
account_state = Table(
    "account_state",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("scores", JSONB, nullable=False, server_default="{}"),
    Column("scores_version", BigInteger, nullable=False, server_default="0"),
    Column("last_response_id", Text),
    Column("last_respondent_id", Text),
    Column("last_survey_type", Text),
    Column("last_score", Integer),
    Column("last_submitted_at", DateTime(timezone=True)),
    Column("last_revised_at", DateTime(timezone=True)),
    #: Only kept when CRM_WRITE_COMMENTS=true, and cleared when its respondent is erased.
    Column("last_comment", Text),
    #: The value to find the account's CRM record by (HUBSPOT_MATCH_FROM), from its latest answer carrying it.
    Column("match_value", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: Respondents erased (so an older answer redelivered later brings no comment back).
erased_respondents = Table(
    "erased_respondents",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("respondent_id", Text, primary_key=True),
    Column("erased_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: The outbox: the properties each connector should hold for each account, and where the write stands.
#: status: pending (to send), synced, unmatched (no CRM record holds the account), failed (a dead letter).
crm_writes = Table(
    "crm_writes",
    metadata,
    Column("connector", Text, primary_key=True),
    Column("account_id", Text, primary_key=True),
    Column("id", BigInteger, Identity(), nullable=False, unique=True),
    Column("version", BigInteger, nullable=False),
    Column("properties", JSONB, nullable=False),
    #: Digests of the values the CRM was last sent (what "unchanged" is measured against).
    Column("sent", JSONB, nullable=False, server_default="{}"),
    Column("written_version", BigInteger, nullable=False, server_default="0"),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("reason", Text),
    Column("status_since", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lease_until", DateTime(timezone=True)),
    Column("lease_token", UUID(as_uuid=False)),
    Column("last_error", Text),
    Column("written_at", DateTime(timezone=True)),
    Column("traceparent", Text),
    Column("reconcile_id", BigInteger),
    #: The match value last searched for in vain (not searched again until it changes, or a reconcile).
    Column("match_tried", Text),
)

#: Per connector, shared by every replica: a stored pause (the daily limit) and the last call's time.
connector_state = Table(
    "connector_state",
    metadata,
    Column("connector", Text, primary_key=True),
    Column("paused_until", DateTime(timezone=True)),
    Column("pause_reason", Text),
    Column("last_call_at", DateTime(timezone=True)),
    Column("writer", Text),
    Column("writer_since", DateTime(timezone=True)),
    Column("problems", JSONB, nullable=False, server_default="[]"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: The owner each connector last reported per account.
account_owners = Table(
    "account_owners",
    metadata,
    Column("connector", Text, primary_key=True),
    Column("account_id", Text, primary_key=True),
    Column("owner_id", Text),
    Column("email", Text),
    Column("name", Text),
    Column("checked_at", DateTime(timezone=True)),
    Column("changed_at", DateTime(timezone=True)),
)

#: account.owner_changed.v1 events to publish (the outbox of owner changes).
owner_outbox = Table(
    "owner_outbox",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("event_id", UUID(as_uuid=False), nullable=False),
    Column("connector", Text, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("email", Text),
    Column("name", Text),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("published_at", DateTime(timezone=True)),
)

#: Reconcile runs: what was asked, and when it was done.
reconcile_runs = Table(
    "reconcile_runs",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("connector", Text),
    Column("dry_run", Boolean, nullable=False, server_default="false"),
    Column("accounts", Integer, nullable=False, server_default="0"),
    Column("requested_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("requested_by", Text),
)

consumer_offsets = offsets_table(metadata, SCHEMA)
