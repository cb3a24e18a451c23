"""Alerts' tables (schema ``alerts``); no other service reads them."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB

from pulse_shared.offsets import offsets_table

SCHEMA = "alerts"
metadata = MetaData(schema=SCHEMA)

#: One row per (rule, account, response): the alert and its delivery state (this table is the outbox).
alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", Text, primary_key=True),
    Column("rule", Text, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("response_id", Text, nullable=False),
    Column("facts", JSONB, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lease_until", DateTime(timezone=True)),
    Column("channel", Text),
    Column("slack_ts", Text),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("delivered_at", DateTime(timezone=True)),
    UniqueConstraint("rule", "account_id", "response_id", name="alerts_rule_response"),
    Column("traceparent", Text),
)

#: Who owns each account (from the CRMs), and their Slack user id once looked up.
account_owners = Table(
    "account_owners",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("owner_email", Text),
    Column("owner_name", Text),
    Column("crm", Text, nullable=False),
    Column("slack_user_id", Text),
    Column("slack_lookup_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

consumer_offsets = offsets_table(metadata, SCHEMA)
