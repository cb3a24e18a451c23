"""Alerts settings, read from the environment once at start-up."""

from __future__ import annotations

from pydantic import Field, SecretStr

from pulse_shared.settings import ServiceSettings


class AlertsSettings(ServiceSettings):
    """Settings of the alerts service."""

    port: int = Field(8002, validation_alias="ALERTS_PORT", description="HTTP port of alerts.")
    consumer_group: str = Field("pulse-alerts", validation_alias="ALERTS_CONSUMER_GROUP")
    slack_bot_token: SecretStr | None = Field(
        None, validation_alias="SLACK_BOT_TOKEN",
        description="Slack bot token (xoxb-...). Without it, alerts are written to the log.",
    )
    slack_api_base_url: str = Field("https://slack.com/api", validation_alias="SLACK_API_BASE_URL")
    slack_default_channel: str | None = Field(
        None, validation_alias="SLACK_DEFAULT_CHANNEL",
        description="Channel for alerts of accounts whose owner is unknown or not on Slack.",
    )
    slack_timeout_seconds: float = Field(10.0, gt=0, validation_alias="SLACK_TIMEOUT_SECONDS")
    max_attempts: int = Field(8, ge=1, validation_alias="ALERTS_MAX_ATTEMPTS",
                              description="Transient failures tolerated before an alert is marked failed.")
