"""Scoring settings, read from the environment once at start-up."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from pulse_shared.settings import ServiceSettings


class ScoringSettings(ServiceSettings):
    """Settings of the scoring service."""

    port: int = Field(8001, validation_alias="SCORING_PORT", description="HTTP port of scoring.")
    consumer_group: str = Field("pulse-scoring", validation_alias="SCORING_CONSUMER_GROUP")
    segment_properties: str = Field(
        "plan,region", validation_alias="SCORING_SEGMENT_PROPERTIES",
        description="Comma-separated answer properties to keep segment counts for.",
    )

    nps_method: Literal["all", "latest_per_respondent"] = Field(
        "all", validation_alias="SCORING_NPS_METHOD",
        description="Account score method: all answers in the window, or each respondent's latest answer.",
    )

    api_tokens: str = Field(
        "", validation_alias="SCORING_API_TOKENS", repr=False,
        description="Comma-separated bearer tokens of the scoring API (several while rotating). Empty: the API is "
        "off (503); it serves comments and respondent ids, so it is never open.",
    )

    @property
    def tokens(self) -> tuple[SecretStr, ...]:
        """The API tokens."""
        return tuple(SecretStr(t.strip()) for t in self.api_tokens.split(",") if t.strip())

    @property
    def segments(self) -> tuple[str, ...]:
        """The segment properties as a tuple."""
        return tuple(p.strip() for p in self.segment_properties.split(",") if p.strip())
