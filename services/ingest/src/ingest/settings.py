"""Ingest settings, read from the environment once at start-up."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from ingest.domain.client_address import IPNetwork, proxy_networks
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
    seed_mode: Literal["create", "replace"] = Field(
        "create", validation_alias="INGEST_SEED_MODE",
        description="create: the seed file creates what is missing and reports (never overwrites) what the admin "
        "API changed since; replace: the file is the truth for every item it names.")
    catalog_refresh_seconds: float = Field(
        5.0, gt=0, validation_alias="INGEST_CATALOG_REFRESH_SECONDS",
        description="How often each replica reloads surveys and keys (a revoked key stops within this time).",
    )
    rate_per_ip_per_minute: int = Field(
        1200, ge=1, validation_alias="INGEST_RATE_PER_IP_PER_MINUTE", description="Requests per client IP per minute."
    )
    trusted_proxies: str = Field(
        "", validation_alias="INGEST_TRUSTED_PROXIES",
        description="Comma-separated CIDRs of the proxies in front of ingest (load balancer, ingress). The client "
        "IP is the right-most X-Forwarded-For address that is not one of them; empty: the peer address.",
    )
    trust_forwarded_for: bool | None = Field(
        None, validation_alias="INGEST_TRUST_FORWARDED_FOR",
        description="Removed: it took the first X-Forwarded-For hop, which any client can write. Use "
        "INGEST_TRUSTED_PROXIES.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        proxy_networks(value)  # a mistake stops the service with the bad entry named
        return value

    @model_validator(mode="after")
    def _no_old_forwarded_for(self) -> IngestSettings:
        if self.trust_forwarded_for:
            raise ValueError("INGEST_TRUST_FORWARDED_FOR was removed (the first X-Forwarded-For hop can be forged): "
                             "set INGEST_TRUSTED_PROXIES to the CIDRs of your proxies instead")
        return self

    @property
    def proxies(self) -> tuple[IPNetwork, ...]:
        """The trusted proxies as networks."""
        return proxy_networks(self.trusted_proxies)
    max_body_bytes: int = Field(32 * 1024, ge=1024, validation_alias="INGEST_MAX_BODY_BYTES")
    max_batch_body_bytes: int = Field(1024 * 1024, ge=1024, validation_alias="INGEST_MAX_BATCH_BODY_BYTES")
    webhook_tolerance_seconds: int = Field(300, ge=1, validation_alias="INGEST_WEBHOOK_TOLERANCE_SECONDS")
