"""Versioned event contracts exchanged over Kafka.

Every event is a frozen pydantic model with a ``type`` that names its version (``response.submitted.v1``).
A breaking change is a new type, never an edit of an existing one. Each topic carries a discriminated union
of the types allowed on it; :func:`decode_response_event` and friends turn bytes into a model or raise
:class:`InvalidEvent`, which consumers send to the dead-letter topic.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, Self, TypeVar
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)

SurveyType = Literal["nps", "csat", "ces"]
Sentiment = Literal["promoter", "passive", "detractor", "satisfied", "neutral", "dissatisfied"]
PropertyValue = StrictStr | StrictBool | StrictInt | StrictFloat

#: Default answer scales: NPS 0-10, CSAT 1-5, CES 1-7 (a survey may configure another scale).
DEFAULT_SCALES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}

MAX_COMMENT_CHARS = 5000
MAX_PROPERTIES = 50

T = TypeVar("T")

AccountId = Annotated[str, Field(min_length=1, max_length=255)]
ResponseId = Annotated[str, Field(min_length=1, max_length=255)]


#: Its own generator, seeded from the OS: whoever seeds the global ``random`` (a test, a library) cannot
#: make ids repeat. Reseeded in forked children, so processes never share a sequence.
_IDS = random.Random()
os.register_at_fork(after_in_child=_IDS.seed)


def random_uuid() -> UUID:
    """A random (version 4) UUID: unique, not secret, as event and generated response ids need to be,
    without the system call ``uuid.uuid4`` makes per id."""
    return UUID(int=_IDS.getrandbits(128), version=4)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def classify(survey_type: SurveyType, score: int, scale_min: int, scale_max: int) -> Sentiment:
    """Classify an answer by the standard definitions (scoring-math.md).

    NPS: 9-10 promoter, 7-8 passive, 0-6 detractor. CSAT: the top two boxes of the survey's scale are
    satisfied, the bottom boxes below the midpoint dissatisfied, the rest neutral (1-5: 4-5 / 3 / 1-2).
    CES (7 = very easy): 5-7 of a 1-7 scale count as satisfied (easy), by the same top-box rule scaled.
    """
    if survey_type == "nps":
        if score >= 9:
            return "promoter"
        return "passive" if score >= 7 else "detractor"
    span = scale_max - scale_min
    if span <= 1:  # a two-point scale such as Zendesk's legacy good/bad
        return "satisfied" if score == scale_max else "dissatisfied"
    top = scale_max - 1 if survey_type == "csat" else scale_max - 2
    if score >= top:
        return "satisfied"
    midpoint = scale_min + span / 2
    return "neutral" if score >= midpoint else "dissatisfied"


#: An answer's category as users read it (API counts, the ``category=`` filter, alert text): NPS promoter /
#: passive / detractor, CSAT satisfied / neutral / dissatisfied, CES easy / neutral / difficult. Events carry
#: the :data:`Sentiment` (a CES answer's is satisfied / neutral / dissatisfied, as it always was on the log);
#: this table names it, per survey type.
Category = Literal["promoter", "passive", "detractor", "satisfied", "neutral", "dissatisfied", "easy", "difficult"]
CATEGORIES: dict[SurveyType, dict[Sentiment, Category]] = {
    "nps": {"promoter": "promoter", "passive": "passive", "detractor": "detractor"},
    "csat": {"satisfied": "satisfied", "neutral": "neutral", "dissatisfied": "dissatisfied"},
    "ces": {"satisfied": "easy", "neutral": "neutral", "dissatisfied": "difficult"},
}


def category_of(survey_type: str, sentiment: str) -> str:
    """The category users read for an answer of ``survey_type`` classified ``sentiment``."""
    names: dict[str, Category] = CATEGORIES.get(survey_type, {})  # type: ignore[call-overload]
    return names.get(sentiment, sentiment)


def sentiments_of(category: Category) -> list[tuple[SurveyType, Sentiment]]:
    """Which (survey type, sentiment) pairs a category names: ``easy`` is a CES answer classified satisfied,
    ``satisfied`` a CSAT one, ``neutral`` either."""
    return [(kind, sentiment) for kind, names in CATEGORIES.items() for sentiment, name in names.items()
            if name == category]


def reject_nul(value: Any, where: str = "value") -> None:
    """Refuse NUL characters anywhere in strings (keys included): PostgreSQL text cannot store them, so
    letting one through would turn into a poison message downstream instead of a clear refusal here."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where} contains a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key, where)
            reject_nul(item, f"{where}.{key}" if isinstance(key, str) else where)
    elif isinstance(value, list | tuple):
        for item in value:
            reject_nul(item, where)
    elif isinstance(value, BaseModel):
        reject_nul(value.__dict__, where)


#: Validation context saying the input was already checked for NUL characters (see :func:`nul_free_json`).
NUL_CHECKED: dict[str, bool] = {"pulse.nul_checked": True}


def nul_free_json(data: bytes | str) -> bool:
    """Whether JSON text certainly holds no NUL character: JSON can only carry one as the escape ``\\u0000``
    (or, invalidly, a raw NUL byte). A literal backslash followed by ``u0000`` is a false alarm, which only
    costs the full walk of :func:`reject_nul`."""
    if isinstance(data, str):
        return "\\u0000" not in data and "\x00" not in data
    return b"\\u0000" not in data and b"\x00" not in data


def nul_checked(info: ValidationInfo) -> bool:
    """Whether the validation runs with the :data:`NUL_CHECKED` context."""
    context = info.context
    return isinstance(context, dict) and context.get("pulse.nul_checked") is True


def nul_context(data: bytes | str) -> dict[str, bool] | None:
    """The validation context for JSON text: :data:`NUL_CHECKED` when it cannot hold a NUL, so the models'
    NUL walk (which costs more than parsing) is skipped; else none, and the walk runs."""
    return NUL_CHECKED if nul_free_json(data) else None


def validate_json(adapter: TypeAdapter[T], data: bytes | str) -> T:
    """``adapter.validate_json`` with the NUL walk skipped when the text cannot hold a NUL."""
    return adapter.validate_json(data, context=nul_context(data))


class NulFree(BaseModel):
    """A model none of whose strings (keys and nested models included) holds a NUL character; the walk is
    skipped under the :data:`NUL_CHECKED` context. Errors name :attr:`nul_where`."""

    nul_where: ClassVar[str] = "value"

    # An "after" validator, over the validated fields: a "before" one makes pydantic turn JSON input into
    # Python objects first and validate those, which doubled the cost of decoding an event.
    @model_validator(mode="after")
    def _no_nul(self, info: ValidationInfo) -> Self:
        if not nul_checked(info):
            reject_nul(self.__dict__, self.nul_where)
        return self


class Event(NulFree):
    """Base of every event: frozen, strict about unknown fields, with a unique id and a time."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    nul_where: ClassVar[str] = "event"

    event_id: UUID = Field(default_factory=random_uuid)
    occurred_at: AwareDatetime = Field(default_factory=utcnow)


class _ResponseBody(Event):
    response_id: ResponseId
    account_id: AccountId
    survey_type: SurveyType
    score: StrictInt
    scale_min: StrictInt
    scale_max: StrictInt
    comment: Annotated[str, Field(max_length=MAX_COMMENT_CHARS)] | None = None
    respondent_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    respondent_email: Annotated[str, Field(max_length=320)] | None = None
    properties: dict[Annotated[str, Field(min_length=1, max_length=100)], PropertyValue] = Field(
        default_factory=dict
    )
    submitted_at: AwareDatetime
    #: The revision time of this version of the answer; the latest revision wins everywhere.
    revised_at: AwareDatetime
    #: Where the answer came from: ``api``, ``widget``, ``delighted``, ``typeform``, ...
    source: Annotated[str, Field(min_length=1, max_length=50)] = "api"
    survey_id: Annotated[str, Field(max_length=255)] | None = None

    @model_validator(mode="after")
    def _check(self) -> _ResponseBody:
        if self.scale_min >= self.scale_max:
            raise ValueError(f"scale {self.scale_min}..{self.scale_max} is empty")
        if not self.scale_min <= self.score <= self.scale_max:
            raise ValueError(f"score {self.score} is outside the scale {self.scale_min}..{self.scale_max}")
        if len(self.properties) > MAX_PROPERTIES:
            raise ValueError(f"at most {MAX_PROPERTIES} properties are allowed")
        return self

    @property
    def sentiment(self) -> Sentiment:
        """The answer's category (promoter/passive/detractor for NPS, else satisfied/neutral/dissatisfied)."""
        return classify(self.survey_type, self.score, self.scale_min, self.scale_max)


class ResponseSubmitted(_ResponseBody):
    """An answer as submitted. A later submission with the same response id is an update of it."""

    type: Literal["response.submitted.v1"] = "response.submitted.v1"


class ResponseUpdated(_ResponseBody):
    """A newer revision of an answer (a comment added, a score changed)."""

    type: Literal["response.updated.v1"] = "response.updated.v1"


class RespondentErased(Event):
    """Erasure request: remove the respondent's personal fields everywhere, keep anonymous counts."""

    type: Literal["respondent.erased.v1"] = "respondent.erased.v1"
    account_id: AccountId
    respondent_id: Annotated[str, Field(min_length=1, max_length=255)]


class ScoreSummary(BaseModel):
    """One metric over one window for an account, with its sample size and 95 % interval."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: SurveyType
    window: Annotated[str, Field(min_length=1, max_length=20)]
    n: StrictInt = Field(ge=0)
    #: NPS in points (-100..100), CSAT in percent (0..100), CES as the mean score; ``None`` when n = 0.
    value: float | None
    ci_low: float | None
    ci_high: float | None
    counts: dict[str, StrictInt] = Field(default_factory=dict)
    #: Change against the previous equal window, its 95 % interval, and whether it is significant.
    delta: float | None = None
    delta_ci_low: float | None = None
    delta_ci_high: float | None = None
    significant: bool = False


class ScoreUpdated(Event):
    """The account's current scores after a committed change; ``version`` grows with every change."""

    type: Literal["score.updated.v1"] = "score.updated.v1"
    account_id: AccountId
    version: StrictInt = Field(ge=1)
    computed_at: AwareDatetime
    scores: tuple[ScoreSummary, ...]


class AccountOwnerChanged(Event):
    """The CRM says this person owns (is the CSM of) the account."""

    type: Literal["account.owner_changed.v1"] = "account.owner_changed.v1"
    account_id: AccountId
    owner_email: Annotated[str, Field(min_length=3, max_length=320)] | None
    owner_name: Annotated[str, Field(max_length=255)] | None = None
    crm: Annotated[str, Field(min_length=1, max_length=50)]


ResponseEvent = Annotated[ResponseSubmitted | ResponseUpdated | RespondentErased, Field(discriminator="type")]
ScoreEvent = Annotated[ScoreUpdated, Field(discriminator="type")]
OwnerEvent = Annotated[AccountOwnerChanged, Field(discriminator="type")]

RESPONSE_EVENTS: TypeAdapter[ResponseSubmitted | ResponseUpdated | RespondentErased] = TypeAdapter(
    ResponseEvent
)
SCORE_EVENTS: TypeAdapter[ScoreUpdated] = TypeAdapter(ScoreEvent)
OWNER_EVENTS: TypeAdapter[AccountOwnerChanged] = TypeAdapter(OwnerEvent)


class InvalidEvent(ValueError):
    """Bytes that are not a valid event of the expected kinds; the message says why."""



def decode(adapter: TypeAdapter[T], data: bytes | None) -> T:
    """Decode JSON bytes with ``adapter`` or raise :class:`InvalidEvent` naming the first problems."""
    if data is None:
        raise InvalidEvent("message has no value")
    try:
        return validate_json(adapter, data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise InvalidEvent(problems) from exc


class Encoded(NamedTuple):
    """An event ready for the broker: its account (the key), its type (a header) and its JSON bytes."""

    account_id: str
    event_type: str
    value: bytes


def encode(event: Event) -> bytes:
    """Encode an event as compact JSON bytes."""
    return event.model_dump_json().encode("utf-8")
