"""Scoring's tables (schema ``scoring``); no other service reads them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    MetaData,
    SmallInteger,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from pulse_shared.offsets import offsets_table

SCHEMA = "scoring"
metadata = MetaData(schema=SCHEMA)

#: One row per answer (its winning revision); personal fields are cleared on erasure.
responses = Table(
    "responses",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("response_id", Text, primary_key=True),
    Column("survey_type", Text, nullable=False),
    Column("score", SmallInteger, nullable=False),
    Column("scale_min", SmallInteger, nullable=False),
    Column("scale_max", SmallInteger, nullable=False),
    Column("sentiment", Text, nullable=False),
    Column("comment", Text),
    Column("respondent_id", Text),
    Column("respondent_email", Text),
    Column("properties", JSONB, nullable=False),
    Column("segments", JSONB, nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("day", Date, nullable=False),
    Column("revised_at", DateTime(timezone=True), nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("survey_id", Text),
    Column("erased", Boolean, nullable=False, server_default="false"),
    Column("stored_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: Additive counts: answers per (account, day, survey type, scale, score, combination of segment values).
#: ``segments`` is the answer's segment values as an object (``{"plan": "pro", "region": "eu"}``, ``{}``
#: without any): the account's total is the sum over its rows, a segment value's the sum over the rows that
#: hold it. Key order serves the hot query: one account, a range of days.
daily_counts = Table(
    "daily_counts",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("survey_type", Text, primary_key=True),
    Column("scale_min", SmallInteger, primary_key=True),
    Column("scale_max", SmallInteger, primary_key=True),
    Column("score", SmallInteger, primary_key=True),
    Column("segments", JSONB, primary_key=True),
    Column("n", BigInteger, nullable=False),
    CheckConstraint("n >= 0", name="daily_counts_n_not_negative"),
)

#: Per account: a change counter and the score-event outbox (pending while version > published_version).
account_state = Table(
    "account_state",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("published_version", BigInteger, nullable=False, server_default="0"),
    Column("due_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_published_at", DateTime(timezone=True)),
    Column("lease_until", DateTime(timezone=True)),
    Column("traceparent", Text),
)

#: Respondents whose personal fields must never be stored again (a replay must not bring them back).
erased_respondents = Table(
    "erased_respondents",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("respondent_id", Text, primary_key=True),
    Column("erased_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

consumer_offsets = offsets_table(metadata, SCHEMA)
