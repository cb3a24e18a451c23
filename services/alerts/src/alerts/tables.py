"""Alerts' tables (schema ``alerts``); no other service reads them."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, MetaData, Table, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB, UUID

from pulse_shared.offsets import offsets_table

SCHEMA = "alerts"
metadata = MetaData(schema=SCHEMA)

#: One row per (rule, response, receiver): the alert and its delivery state (this table is the outbox).
alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", Text, primary_key=True),
    Column("rule", Text, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("response_id", Text, nullable=False),
    Column("receiver", Text, nullable=False, server_default="owner"),
    Column("fallback_channel", Text),
    Column("severity", Text, nullable=False, server_default="warning"),
    Column("facts", JSONB, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lease_until", DateTime(timezone=True)),
    Column("lease_token", UUID(as_uuid=False)),
    #: The post recorded before it is made: where, when, and a digest of the facts it shows.
    Column("attempt_at", DateTime(timezone=True)),
    Column("attempt_channel", Text),
    Column("attempt_digest", Text),
    Column("channel", Text),
    Column("slack_ts", Text),
    Column("last_error", Text),
    Column("revised_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("delivered_at", DateTime(timezone=True)),
    Column("traceparent", Text),
    #: What the team did in Slack (acknowledged, assigned, snoozed); the version grows with every change.
    Column("handling", JSONB, nullable=False, server_default="{}"),
    Column("handling_version", Integer, nullable=False, server_default="0"),
    #: Where the alert goes if nobody acknowledges it in time (channel:C... or pagerduty), and when it went.
    Column("escalate_to", Text),
    Column("escalate_after_s", Integer),
    Column("escalated_at", DateTime(timezone=True)),
    #: The route's quiet hours ({start, end, tz}) and cooldown per (account, rule), checked before posting.
    Column("quiet_hours", JSONB),
    Column("cooldown_s", Integer),
    #: Grouping (the route's group_wait and group_interval; NULL: not grouped). A member names its leader, whose
    #: message lists the group; the leader's group_version grows whenever a member joins or changes.
    Column("group_wait_s", Integer),
    Column("group_interval_s", Integer),
    Column("group_leader", Text),
    Column("group_version", Integer, nullable=False, server_default="0"),
    UniqueConstraint("rule", "account_id", "response_id", "receiver", name="alerts_rule_response_receiver"),
)

#: Who owns each account (from the CRMs or the admin API).
account_owners = Table(
    "account_owners",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("owner_email", Text),
    Column("owner_name", Text),
    Column("crm", Text, nullable=False),
    Column("changed_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: users.lookupByEmail and conversations.open results by email (``user_id`` NULL: not on Slack).
slack_users = Table(
    "slack_users",
    metadata,
    Column("email", Text, primary_key=True),
    Column("user_id", Text),
    Column("dm_channel", Text),
    Column("looked_up_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: The next time a post may go to each channel (shared by every replica).
channel_budget = Table(
    "channel_budget",
    metadata,
    Column("channel", Text, primary_key=True),
    Column("next_allowed_at", DateTime(timezone=True), nullable=False),
    #: A post is on its way (the reservation lapses by itself if its replica died).
    Column("in_flight", Boolean, nullable=False, server_default="false"),
)

#: What alerts knows about each account: name and segment labels (latest answer), score summary (latest event).
accounts = Table(
    "accounts",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("name", Text),
    Column("labels", JSONB, nullable=False, server_default="{}"),
    Column("labels_at", DateTime(timezone=True)),
    Column("scores", JSONB),
    Column("scores_version", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: Whether each (significant-drop rule, account) is in a drop now.
drop_state = Table(
    "drop_state",
    metadata,
    Column("rule", Text, primary_key=True),
    Column("account_id", Text, primary_key=True),
    Column("active", Boolean, nullable=False),
    Column("since_version", BigInteger),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: Respondents erased on request: their personal fields are never stored again, even on a replay.
erased_respondents = Table(
    "erased_respondents",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("respondent_id", Text, primary_key=True),
    Column("erased_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: Clicks already applied (Slack's action_ts, action, user, message): a redelivered request changes nothing.
slack_interactions = Table(
    "slack_interactions",
    metadata,
    Column("key", Text, primary_key=True),
    Column("alert_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: PagerDuty Events v2 to send (the outbox): a trigger when an alert escalates, a resolve when it is acknowledged.
pagerduty_events = Table(
    "pagerduty_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("dedup_key", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lease_until", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("sent_at", DateTime(timezone=True)),
    UniqueConstraint("dedup_key", "action", name="pagerduty_events_once"),
)

#: Silences: alerts matching them (account, rule, labels) between start and end are stored, never posted.
silences = Table(
    "silences",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("account_id", Text),
    Column("rule", Text),
    Column("labels", JSONB, nullable=False, server_default="{}"),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("author", Text, nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

consumer_offsets = offsets_table(metadata, SCHEMA)
