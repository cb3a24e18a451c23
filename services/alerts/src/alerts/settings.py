"""Alerts settings, read from the environment once at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from alerts.config import check_channel
from pulse_shared.settings import ServiceSettings


class AlertsSettings(ServiceSettings):
    """Settings of the alerts service."""

    port: int = Field(8002, validation_alias="ALERTS_PORT", description="HTTP port of alerts.")
    consumer_group: str = Field("pulse-alerts", validation_alias="ALERTS_CONSUMER_GROUP")
    config_file: Path | None = Field(
        None, validation_alias="ALERTS_CONFIG_FILE",
        description="YAML file of rules and routes; without it, detractors go to the account owner's DM.",
    )
    admin_token: SecretStr | None = Field(
        None, validation_alias="ALERTS_ADMIN_TOKEN",
        description="Bearer token of the admin API (account owners, alert history). Unset: admin API off.",
    )
    slack_bot_token: SecretStr | None = Field(
        None, validation_alias="SLACK_BOT_TOKEN",
        description="Slack bot token (xoxb-...). Without it, alerts are written to the log.",
    )
    slack_signing_secret: SecretStr | None = Field(
        None, validation_alias="SLACK_SIGNING_SECRET",
        description="The Slack app's signing secret: turns on the alert buttons (Acknowledge, Assign to me, Snooze "
        "24 h) and verifies each click sent to POST /v1/slack/interactions.",
    )
    pagerduty_routing_key: SecretStr | None = Field(
        None, validation_alias="PAGERDUTY_ROUTING_KEY",
        description="Events API v2 integration key of the PagerDuty service that routes with escalate_to: pagerduty.",
    )
    pagerduty_events_url: str = Field("https://events.pagerduty.com/v2/enqueue",
                                      validation_alias="PAGERDUTY_EVENTS_URL")
    escalation_check_seconds: float = Field(
        30.0, gt=0, validation_alias="ALERTS_ESCALATION_CHECK_SECONDS",
        description="How often unacknowledged alerts are checked against their route's escalate_after.",
    )
    slack_api_base_url: str = Field("https://slack.com/api", validation_alias="SLACK_API_BASE_URL")
    slack_default_channel: str | None = Field(
        None, validation_alias="SLACK_DEFAULT_CHANNEL",
        description="Channel id (C...) for alerts of accounts whose owner is unknown or not on Slack.",
    )
    slack_timeout_seconds: float = Field(10.0, gt=0, validation_alias="SLACK_TIMEOUT_SECONDS")
    max_attempts: int = Field(8, ge=1, validation_alias="ALERTS_MAX_ATTEMPTS",
                              description="Transient failures tolerated before an alert is marked failed.")
    comment_hold_seconds: float = Field(
        60.0, ge=0, validation_alias="ALERTS_COMMENT_HOLD_SECONDS",
        description="How long a detractor answer without a comment waits for the update that brings it (0: off).",
    )
    lease_seconds: float = Field(
        60.0, ge=2, validation_alias="ALERTS_LEASE_SECONDS",
        description="How long a replica holds an alert it is delivering; a crashed replica's alerts are taken "
        "over (and read back from Slack) after it.",
    )
    concurrency: int = Field(32, ge=1, le=256, validation_alias="ALERTS_CONCURRENCY",
                             description="Alerts delivered at once per replica.")
    channel_interval_seconds: float = Field(
        1.0, gt=0, validation_alias="ALERTS_CHANNEL_INTERVAL_SECONDS",
        description="Least time between two posts reaching one channel, across replicas (Slack allows about one "
        "per second).",
    )
    read_back_margin_seconds: float = Field(
        120.0, ge=0, validation_alias="ALERTS_READ_BACK_MARGIN_SECONDS",
        description="How far before a recorded attempt a read-back looks (clock differences with Slack).",
    )
    retry_base_seconds: float = Field(2.0, gt=0, validation_alias="ALERTS_RETRY_BASE_SECONDS",
                                      description="First backoff after a transient failure (doubles each time).")
    fetch_max_wait_ms: int = Field(
        50, ge=1, le=5000, validation_alias="ALERTS_FETCH_MAX_WAIT_MS",
        description="How long the broker may hold the consumer's fetch when there is nothing new: part of the "
        "latency from an answer to its alert (a fetch returns at once when data arrives on a busy partition).",
    )
    crm_url_template: str | None = Field(
        None, validation_alias="ALERTS_CRM_URL_TEMPLATE",
        description="Link to an account's CRM record, with {account_id} (URL-quoted) in it.",
    )

    @field_validator("slack_default_channel")
    @classmethod
    def _channel_id(cls, value: str | None) -> str | None:
        return None if not value else check_channel(value)

    @model_validator(mode="after")
    def _budget(self) -> AlertsSettings:
        # A row's work (lookup, DM open, read-back, post) must fit inside 3/4 of its lease.
        if self.slack_timeout_seconds * 4 > self.lease_seconds * 0.75:
            raise ValueError(
                f"ALERTS_LEASE_SECONDS={self.lease_seconds} is too short for SLACK_TIMEOUT_SECONDS="
                f"{self.slack_timeout_seconds}: it must be at least {self.slack_timeout_seconds * 16 / 3:.0f}"
            )
        return self
