"""The public shape of one answer, and its translation into the response event of a survey."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import to_json

from ingest.domain.catalog import Survey
from pulse_shared.events import (
    MAX_COMMENT_CHARS,
    MAX_PROPERTIES,
    Encoded,
    NulFree,
    PropertyValue,
    ResponseSubmitted,
    SurveyType,
    random_uuid,
    reject_nul,
)

Identifier = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f]+$")]
MAX_BATCH = 500




def _integral(value: object) -> object:
    """A float that is a whole number (``9.0``) as the integer it is; anything else as given, to be judged
    strictly (``9.5``, ``"9"`` and ``true`` are not scores)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[StrictInt, BeforeValidator(_integral)]

class ResponseIn(NulFree):
    """One survey answer as a widget or an API client sends it."""

    nul_where: ClassVar[str] = "answer"

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "response_id": "resp-0001",
                    "survey_type": "nps",
                    "score": 3,
                    "comment": "Exports keep timing out",
                    "account_id": "acme-42",
                    "respondent_id": "user-7",
                    "properties": {"plan": "enterprise", "region": "eu"},
                    "submitted_at": "2026-11-23T10:00:00Z",
                }
            ]
        },
    )

    response_id: Identifier | None = Field(
        None, description="Your id for this answer; sending it again updates the same answer."
    )
    survey_type: SurveyType = Field(description="nps, csat or ces; must be the type of the key's survey.")
    score: WholeNumber = Field(description="The answer on the survey's scale: an integer (`9`, or `9.0` as some "
                               "tools send it; `9.5`, `\"9\"` and `true` are refused).")
    comment: Annotated[str, Field(max_length=MAX_COMMENT_CHARS)] | None = None
    account_id: Identifier = Field(description="The customer account (company) the respondent belongs to.")
    respondent_id: Identifier | None = None
    properties: dict[Annotated[str, Field(min_length=1, max_length=100)], PropertyValue] = Field(
        default_factory=dict,
        max_length=MAX_PROPERTIES,  # checked by pydantic-core: no Python call per answer
        description=f"Flat map of string/number/bool (at most {MAX_PROPERTIES} keys), used for segments.",
    )
    submitted_at: AwareDatetime | None = Field(None, description="When the answer was given (default: now).")


class NotForSurvey(ValueError):
    """The answer does not fit the survey (wrong type, score off the scale)."""


#: Every field of the event in the model's order, with its default where it has one (filled per event).
_EVENT_TEMPLATE: dict[str, Any] = {name: None if info.is_required() or info.default_factory else info.default
                                   for name, info in ResponseSubmitted.model_fields.items()}
_SUBMITTED_TYPE: str = ResponseSubmitted.model_fields["type"].default


def encoded_event(fields: dict[str, Any], *, event_id: UUID | None = None) -> Encoded:
    """The event of :func:`event_fields`, ready for the broker: its JSON is byte for byte what
    :func:`pulse_shared.events.encode` writes for the model (same fields, order and formats; the tests hold
    every accepted answer's encoding to the model's), written without building the model. In a batch,
    building and dumping 500 models cost about a third of the request; the answers were validated already,
    and ``event_fields`` adds only catalog values."""
    record = dict(_EVENT_TEMPLATE)
    record.update(fields, event_id=event_id or random_uuid(), type=_SUBMITTED_TYPE)
    return Encoded(fields["account_id"], _SUBMITTED_TYPE, to_json(record))


def event_fields(
    answer: ResponseIn, survey: Survey, *, now: datetime, source: str, idempotency_key: str | None = None,
    response_id: str | None = None,
) -> dict[str, Any]:
    """The response event's fields for an accepted answer to ``survey``, or :class:`NotForSurvey`.

    A validated answer and a catalog survey hold no NUL, so only a given id is walked here; everything else
    the event's contract asks was checked when the answer was validated (:func:`encoded_event` writes it)."""
    scale_min, scale_max = survey.scale
    if answer.survey_type != survey.survey_type:
        raise NotForSurvey(f"survey_type {answer.survey_type!r} does not match the survey's type "
                           f"{survey.survey_type!r}")
    if not scale_min <= answer.score <= scale_max:
        raise NotForSurvey(
            f"score {answer.score} is outside the {answer.survey_type.upper()} scale {scale_min}..{scale_max}"
        )
    given_id = answer.response_id or idempotency_key or response_id
    reject_nul(given_id, "response_id")
    return {
        "response_id": given_id or _new_id(),
        "account_id": answer.account_id,
        "survey_type": answer.survey_type,
        "score": answer.score,
        "scale_min": scale_min,
        "scale_max": scale_max,
        "comment": answer.comment or None,
        "respondent_id": answer.respondent_id,
        "properties": answer.properties,
        "submitted_at": (answer.submitted_at or now).astimezone(UTC),
        "revised_at": now,
        "occurred_at": now,
        "source": source,
        "survey_id": survey.survey_id,
    }


#: One answer's problems, each as pydantic reports it (``loc`` within the answer).
Problems = list[dict[str, Any]]


class ValidBatch(BaseModel):
    """A batch whose every answer is valid (the common case, read in one pass)."""

    responses: list[ResponseIn] = Field(min_length=1, max_length=MAX_BATCH)


VALID_BATCH: TypeAdapter[ValidBatch] = TypeAdapter(ValidBatch)


def validate_answers(
    items: Sequence[dict[str, Any]], *, context: dict[str, bool] | None
) -> list[ResponseIn | Problems]:
    """Per item of a batch that failed the one-pass read (:data:`VALID_BATCH`), the answer or its problems
    (``loc`` within the answer)."""
    answers: list[ResponseIn | Problems] = []
    for item in items:
        try:
            answers.append(ResponseIn.model_validate(item, context=context))
        except ValidationError as exc:
            answers.append([dict(error) for error in exc.errors(include_url=False, include_context=False)])
    return answers


def _new_id() -> str:
    return str(random_uuid())
