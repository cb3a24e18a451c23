"""Surveys, write keys and webhook sources: what ingest accepts answers for (validated, immutable)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ingest.domain.widget import WidgetSettings, unknown_follow_up_categories
from pulse_shared.events import DEFAULT_SCALES, NulFree, SurveyType

Slug = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
WEBHOOK_KINDS = ("delighted", "typeform", "formbricks", "wootric", "zendesk", "satismeter", "standard")
WebhookKind = Literal["delighted", "typeform", "formbricks", "wootric", "zendesk", "satismeter", "standard"]
#: A browser origin: scheme://host[:port], no path, no trailing slash.
Origin = Annotated[str, Field(max_length=300, pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")]


class CatalogModel(NulFree):
    """Base of the catalog's models: no NUL characters anywhere (PostgreSQL text cannot hold them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    nul_where: ClassVar[str] = "catalog entry"


class Survey(CatalogModel):
    """A survey: its type, scale, question, state and in-app display rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    survey_id: Slug
    name: Annotated[str, Field(min_length=1, max_length=200)]
    survey_type: SurveyType
    scale_min: int | None = None
    scale_max: int | None = None
    question: Annotated[str, Field(min_length=1, max_length=500)] = "How likely are you to recommend us to a friend?"
    closed: bool = False
    recontact_days: Annotated[int, Field(ge=0, le=3650)] = 90
    sample_percent: Annotated[int, Field(ge=0, le=100)] = 100
    ask_later_days: Annotated[int, Field(ge=0, le=365)] = 7
    min_days_since_signup: Annotated[int, Field(ge=0, le=3650)] = 0
    widget: WidgetSettings = Field(default_factory=WidgetSettings,
                                   description="The in-app widget's colour, theme, placement and texts.")

    @model_validator(mode="before")
    @classmethod
    def _default_scale(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("survey_type") in DEFAULT_SCALES:
            lo, hi = DEFAULT_SCALES[data["survey_type"]]
            data = {**data, "scale_min": data.get("scale_min", lo) if data.get("scale_min") is not None else lo,
                    "scale_max": data.get("scale_max", hi) if data.get("scale_max") is not None else hi}
        return data

    @model_validator(mode="after")
    def _scale(self) -> Survey:
        assert self.scale_min is not None
        assert self.scale_max is not None
        if not 0 <= self.scale_min < self.scale_max <= 100:
            raise ValueError(f"scale {self.scale_min}..{self.scale_max} is not a scale")
        unknown = unknown_follow_up_categories(self.widget, self.survey_type)
        if unknown:
            raise ValueError(f"widget.texts follow_up names categories a {self.survey_type.upper()} survey does not "
                             f"have ({', '.join(unknown)})")
        return self

    @property
    def scale(self) -> tuple[int, int]:
        """(min, max) of the answer scale."""
        assert self.scale_min is not None
        assert self.scale_max is not None
        return self.scale_min, self.scale_max


class WriteKey(CatalogModel):
    """A publishable key that lets a widget or an API client submit answers to one survey."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Annotated[str, Field(min_length=16, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]
    survey_id: Slug
    label: str | None = None
    allowed_origins: tuple[Origin, ...] = ()
    rate_per_minute: Annotated[int, Field(ge=1, le=1_000_000)] = 600
    revoked_at: datetime | None = None
    test_mode: bool = Field(False, description="Lets the widget's Pulse.show({force: true}) ignore the display "
                            "rules, for trying a survey out; never give it to production pages.")


class WebhookMapping(CatalogModel):
    """Where a source's payload carries what Pulse needs (dotted paths into the payload)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_id_field: Annotated[str, Field(min_length=1, max_length=200)]
    respondent_id_field: str | None = None
    respondent_email_field: str | None = None
    #: Typeform: the ``ref`` of the score question. Formbricks: the id of the score question.
    score_field: str | None = None
    #: Typeform / Formbricks: the ref / id of the comment question.
    comment_field: str | None = None
    properties_fields: dict[str, str] = Field(default_factory=dict)


class WebhookSource(CatalogModel):
    """A configured sender of ``/v1/webhooks/{source}``: its name (``source``), the tool it is (``kind``), its
    secrets and mapping. A tool may have several sources (one per form or survey, each with its own Pulse
    survey and secret); a source named after its tool (``typeform``) needs no ``kind``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Slug
    kind: WebhookKind
    survey_id: Slug
    secrets: tuple[Annotated[str, Field(min_length=8, max_length=500)], ...] = Field(min_length=1)
    mapping: WebhookMapping
    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _kind_from_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") is None and data.get("source") in WEBHOOK_KINDS:
            return {**data, "kind": data["source"]}
        if isinstance(data, dict) and data.get("kind") is None:
            raise ValueError(f"kind is required for source {data.get('source')!r} (the tool that sends it: "
                             f"{', '.join(WEBHOOK_KINDS)})")
        return data

    @model_validator(mode="after")
    def _secrets_usable(self) -> WebhookSource:
        if self.kind in STANDARD_KINDS:
            for index, secret in enumerate(self.secrets):
                if standard_secret(secret) is None:
                    raise ValueError(f"secrets[{index}] is not a Standard Webhooks secret: expected base64, "
                                     "optionally prefixed whsec_ (as the sender shows it)")
        return self


#: Tools that sign with Standard Webhooks, whose secret is base64 key material.
STANDARD_KINDS = ("standard", "formbricks")


def standard_secret(secret: str) -> bytes | None:
    """The key of a Standard Webhooks secret (``whsec_`` + base64, padding optional, as the reference library
    accepts it), or None when it is not base64 at all: never silently used as text."""
    raw = secret.strip().removeprefix("whsec_")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key or None


@dataclass(frozen=True)
class Catalog:
    """An immutable snapshot of everything the request path needs, swapped whole on refresh."""

    surveys: dict[str, Survey] = field(default_factory=dict)
    keys: dict[str, WriteKey] = field(default_factory=dict)
    sources: dict[str, WebhookSource] = field(default_factory=dict)

    def survey_for(self, key: WriteKey) -> Survey:
        """The survey a key writes to."""
        return self.surveys[key.survey_id]


def as_row(model: BaseModel) -> dict[str, Any]:
    """The model as a table row."""
    return model.model_dump(mode="json")
