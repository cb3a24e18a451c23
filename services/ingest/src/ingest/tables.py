"""Ingest's tables (schema ``ingest``): surveys, write keys, webhook sources, widget contact state."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

SCHEMA = "ingest"
metadata = MetaData(schema=SCHEMA)

surveys = Table(
    "surveys",
    metadata,
    Column("survey_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("survey_type", Text, nullable=False),
    Column("scale_min", SmallInteger, nullable=False),
    Column("scale_max", SmallInteger, nullable=False),
    Column("question", Text, nullable=False),
    Column("closed", Boolean, nullable=False, server_default="false"),
    Column("recontact_days", Integer, nullable=False, server_default="90"),
    Column("sample_percent", Integer, nullable=False, server_default="100"),
    Column("ask_later_days", Integer, nullable=False, server_default="7"),
    Column("min_days_since_signup", Integer, nullable=False, server_default="0"),
    Column("widget", JSONB, nullable=False, server_default="{}"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

write_keys = Table(
    "write_keys",
    metadata,
    Column("key", Text, primary_key=True),
    Column("survey_id", Text, ForeignKey("ingest.surveys.survey_id"), nullable=False),
    Column("label", Text),
    Column("allowed_origins", ARRAY(Text), nullable=False, server_default="{}"),
    Column("rate_per_minute", Integer, nullable=False, server_default="600"),
    Column("revoked_at", DateTime(timezone=True)),
    Column("test_mode", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

webhook_sources = Table(
    "webhook_sources",
    metadata,
    Column("source", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("survey_id", Text, ForeignKey("ingest.surveys.survey_id"), nullable=False),
    Column("secrets", ARRAY(Text), nullable=False, server_default="{}"),
    Column("mapping", JSONB, nullable=False, server_default="{}"),
    Column("enabled", Boolean, nullable=False, server_default="true"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: When the widget last asked this respondent, and until when they asked not to be asked.
widget_contacts = Table(
    "widget_contacts",
    metadata,
    Column("survey_id", Text, primary_key=True),
    Column("account_id", Text, primary_key=True),
    Column("respondent_id", Text, primary_key=True),
    Column("last_shown_at", DateTime(timezone=True)),
    Column("snoozed_until", DateTime(timezone=True)),
)
