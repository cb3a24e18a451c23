"""Event contracts: validation, classification, decoding errors."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from pulse_shared.events import (
    RESPONSE_EVENTS,
    SCORE_EVENTS,
    InvalidEvent,
    RespondentErased,
    ResponseSubmitted,
    classify,
    decode,
    encode,
    random_uuid,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def submitted(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "response.submitted.v1", "response_id": "r1", "account_id": "acme", "survey_type": "nps",
        "score": 7, "scale_min": 0, "scale_max": 10, "submitted_at": NOW.isoformat(),
        "revised_at": NOW.isoformat(),
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("survey", "score", "lo", "hi", "expected"),
    [
        ("nps", 0, 0, 10, "detractor"), ("nps", 6, 0, 10, "detractor"), ("nps", 7, 0, 10, "passive"),
        ("nps", 8, 0, 10, "passive"), ("nps", 9, 0, 10, "promoter"), ("nps", 10, 0, 10, "promoter"),
        ("csat", 5, 1, 5, "satisfied"), ("csat", 4, 1, 5, "satisfied"), ("csat", 3, 1, 5, "neutral"),
        ("csat", 2, 1, 5, "dissatisfied"), ("csat", 1, 1, 5, "dissatisfied"),
        ("csat", 6, 1, 7, "satisfied"), ("csat", 5, 1, 7, "neutral"), ("csat", 3, 1, 7, "dissatisfied"),
        ("csat", 1, 0, 1, "satisfied"), ("csat", 0, 0, 1, "dissatisfied"),
        ("ces", 5, 1, 7, "satisfied"), ("ces", 4, 1, 7, "neutral"), ("ces", 3, 1, 7, "dissatisfied"),
    ],
)
def test_classification_follows_the_standard_definitions(
    survey: str, score: int, lo: int, hi: int, expected: str
) -> None:
    assert classify(survey, score, lo, hi) == expected  # type: ignore[arg-type]


def test_round_trip_through_bytes() -> None:
    event = RESPONSE_EVENTS.validate_python(submitted(comment="hi", properties={"plan": "pro", "seats": 5}))
    again = decode(RESPONSE_EVENTS, encode(event))
    assert again == event
    assert isinstance(again, ResponseSubmitted)
    assert again.sentiment == "passive"


def test_events_are_frozen() -> None:
    event = RespondentErased(account_id="acme", respondent_id="u1")
    with pytest.raises(ValidationError):
        event.account_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"not json", "json"),
        (json.dumps(submitted(score=11)).encode(), "outside the scale"),
        (json.dumps(submitted(score=False)).encode(), "score"),
        (json.dumps(submitted(score=9.5)).encode(), "score"),
        (json.dumps({k: v for k, v in submitted().items() if k != "account_id"}).encode(), "account_id"),
        (json.dumps(submitted(type="response.submitted.v99")).encode(), "type"),
        (json.dumps(submitted(submitted_at="2026-11-23T12:00:00")).encode(), "submitted_at"),
        (json.dumps(submitted(properties={"nested": {"a": 1}})).encode(), "properties"),
        (None, "no value"),
    ],
)
def test_invalid_messages_raise_invalid_event_naming_the_problem(payload: bytes | None, problem: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode(RESPONSE_EVENTS, payload)
    assert problem in str(info.value).lower()


def test_nul_characters_are_refused_anywhere_so_they_never_poison_a_consumer() -> None:
    with pytest.raises(InvalidEvent, match="NUL"):
        decode(RESPONSE_EVENTS, json.dumps(submitted(comment="bad\x00byte")).encode())
    with pytest.raises(InvalidEvent, match="NUL"):
        decode(RESPONSE_EVENTS, json.dumps(submitted(properties={"k\x00": "v"})).encode())
    with pytest.raises(InvalidEvent, match="control character"):  # a raw NUL byte is not JSON at all
        decode(RESPONSE_EVENTS, json.dumps(submitted(comment="x")).encode().replace(b'"x"', b'"a\x00b"'))
    with pytest.raises(ValidationError, match="NUL"):  # events built in code are walked too
        ResponseSubmitted(**{**submitted(), "respondent_id": "u\x00"})
    score_event = {
        "type": "score.updated.v1", "account_id": "acme", "version": 1, "computed_at": NOW.isoformat(),
        "scores": [{"metric": "nps", "window": "30d\x00", "n": 0, "value": None, "ci_low": None,
                    "ci_high": None}],
    }
    with pytest.raises(InvalidEvent, match="NUL"):  # nested models are walked as well
        decode(SCORE_EVENTS, json.dumps(score_event).encode())
    score_event["scores"][0]["window"] = "30d"  # type: ignore[index]
    assert decode(SCORE_EVENTS, json.dumps(score_event).encode()).scores[0].window == "30d"


def test_text_that_merely_looks_like_a_nul_escape_is_kept() -> None:
    """The fast path skips the walk only when no NUL can be there; a literal backslash-u0000 is text."""
    event = decode(RESPONSE_EVENTS, json.dumps(submitted(comment="C:\\u0000 is not a NUL")).encode())
    assert isinstance(event, ResponseSubmitted)
    assert event.comment == "C:\\u0000 is not a NUL"


def test_random_uuids_are_version_4_and_distinct() -> None:
    ids = [random_uuid() for _ in range(10_000)]
    assert {(u.version, u.variant) for u in ids} == {(4, uuid.RFC_4122)}
    assert len(set(ids)) == len(ids)


def test_random_uuids_do_not_repeat_when_the_global_generator_is_seeded() -> None:
    random.seed(7)
    first = random_uuid()
    random.seed(7)
    assert random_uuid() != first
