"""Ingest settings, read from the environment once at start-up."""

from __future__ import annotations

from pydantic import Field

from pulse_shared.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    """Settings of the ingest service."""

    port: int = Field(8000, validation_alias="INGEST_PORT", description="HTTP port of ingest.")
    retry_after_seconds: int = Field(
        5, ge=1, validation_alias="INGEST_RETRY_AFTER_SECONDS",
        description="Retry-After sent with 503 when the broker cannot take an answer.",
    )
