"""Typed settings read from the environment once at start-up and passed down.

Each service subclasses :class:`ServiceSettings` and adds its own fields; nothing else in the code reads
``os.environ``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pulse_shared.topics import Topics


class ServiceSettings(BaseSettings):
    """Settings every Pulse service shares (Kafka, PostgreSQL, HTTP, logging, shutdown)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated Kafka bootstrap servers."
    )
    kafka_enable_idempotence: bool = Field(
        True, description="Idempotent producer; turn off for the dev broker (tansu), which lacks it."
    )
    kafka_topic_prefix: str = Field("", description="Prefix for every topic name (shared clusters, tests).")
    kafka_send_timeout_seconds: float = Field(
        5.0, gt=0, description="Bound on one produce (until the broker acknowledged it with acks=all)."
    )
    kafka_linger_ms: int = Field(
        2, ge=0, le=1000, description="How long a producer waits for more events to join a record batch (more "
        "per request to the broker, more latency per event).",
    )
    kafka_client_id: str = Field("pulse", description="Kafka client id prefix.")
    kafka_session_timeout_ms: int = Field(
        10_000, ge=1000, description="Consumer group session timeout: how soon a dead member's partitions move."
    )
    kafka_max_poll_interval_ms: int = Field(
        300_000, ge=1000, description="Longest processing stall before a member is considered gone."
    )
    database_url: str | None = Field(
        None, description="PostgreSQL URL (postgresql://user:pass@host:port/db); required by stateful services."
    )
    database_pool_size: int = Field(10, ge=1, description="Connection pool size per process.")
    database_command_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest wait for one statement's answer; a connection left hanging (a failover, a "
        "dropped network path) fails after it and is replaced, instead of stalling its worker until TCP gives up.",
    )
    database_connect_timeout_seconds: float = Field(10.0, gt=0, description="Longest wait for a new connection.")
    http_host: str = Field("0.0.0.0", description="Interface the HTTP server binds to.")
    log_level: str = Field("INFO", description="Log level: DEBUG, INFO, WARNING, ERROR.")
    shutdown_grace_seconds: float = Field(
        20.0, gt=0, description="How long a SIGTERM drain may take before work is abandoned."
    )

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return upper

    @property
    def topics(self) -> Topics:
        """Topic names with this deployment's prefix."""
        return Topics(self.kafka_topic_prefix)

    def require_database_url(self) -> str:
        """The database URL, or a clear error for a stateful service started without one."""
        if not self.database_url:
            raise ValueError("DATABASE_URL is required for this service")
        return self.database_url


def check_timezone(value: str) -> str:
    """An IANA time zone name (``Europe/Berlin``), or a clear error."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)") from exc
    return value


class ConfigError(ValueError):
    """A configuration mistake found at start-up; the message says where (file, line, field) and what."""


S = TypeVar("S", bound=ServiceSettings)  # a service's settings class


def load_settings(cls: type[S]) -> S:
    """Read a service's settings from the environment and, when ``PULSE_SECRETS_DIR`` names a folder, from
    one file per setting in it (a mounted Kubernetes Secret: file ``DATABASE_URL`` holds DATABASE_URL).
    Files win over nothing, and the environment wins over files."""
    secrets_dir = os.environ.get("PULSE_SECRETS_DIR", "").strip()
    if secrets_dir and Path(secrets_dir).is_dir():
        return cls(_secrets_dir=secrets_dir)
    return cls()
