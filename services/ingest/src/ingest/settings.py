"""Ingest settings, read from the environment once at start-up."""

from __future__ import annotations

from pydantic import Field, SecretStr

from pulse_shared.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    """Settings of the ingest service."""

    port: int = Field(8000, validation_alias="INGEST_PORT", description="HTTP port of ingest.")
    retry_after_seconds: int = Field(
        5, ge=1, validation_alias="INGEST_RETRY_AFTER_SECONDS",
        description="Retry-After sent with 503 when the broker cannot take an answer.",
    )
    admin_token: SecretStr | None = Field(
        None, validation_alias="INGEST_ADMIN_TOKEN",
        description="Bearer token of the admin API (surveys, keys, webhook sources, erasure). Unset: admin API off.",
    )
    seed_file: str | None = Field(
        None, validation_alias="INGEST_SEED_FILE", description="YAML file of surveys, keys and sources loaded at start."
    )
    catalog_refresh_seconds: float = Field(
        5.0, gt=0, validation_alias="INGEST_CATALOG_REFRESH_SECONDS",
        description="How often each replica reloads surveys and keys (a revoked key stops within this time).",
    )
    rate_per_ip_per_minute: int = Field(
        1200, ge=1, validation_alias="INGEST_RATE_PER_IP_PER_MINUTE", description="Requests per client IP per minute."
    )
    trust_forwarded_for: bool = Field(
        False, validation_alias="INGEST_TRUST_FORWARDED_FOR",
        description="Take the client IP from X-Forwarded-For (only behind a proxy that sets it).",
    )
    max_body_bytes: int = Field(32 * 1024, ge=1024, validation_alias="INGEST_MAX_BODY_BYTES")
    max_batch_body_bytes: int = Field(1024 * 1024, ge=1024, validation_alias="INGEST_MAX_BATCH_BODY_BYTES")
    webhook_tolerance_seconds: int = Field(300, ge=1, validation_alias="INGEST_WEBHOOK_TOLERANCE_SECONDS")
