"""crm-sync's tables (schema ``crm_sync``); no other service reads them."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, Table, Text, func
from sqlalchemy.dialects.postgresql import JSONB

from pulse_shared.offsets import offsets_table

SCHEMA = "crm_sync"
metadata = MetaData(schema=SCHEMA)

#: The latest scores to write per (connector, account); pending while version > written_version.
crm_writes = Table(
    "crm_writes",
    metadata,
    Column("connector", Text, primary_key=True),
    Column("account_id", Text, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("properties", JSONB, nullable=False),
    Column("written_version", BigInteger, nullable=False, server_default="0"),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("lease_until", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("written_at", DateTime(timezone=True)),
    Column("traceparent", Text),
)

consumer_offsets = offsets_table(metadata, SCHEMA)
