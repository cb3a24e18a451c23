"""Every event written for an accepted answer satisfies the event contract and reads back unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.domain.catalog import Survey
from ingest.domain.submission import ResponseIn, encoded_event, event_fields
from pulse_shared.events import RESPONSE_EVENTS, ResponseSubmitted, decode, encode

SURVEYS = {
    "nps": Survey(survey_id="product-nps", name="NPS", survey_type="nps"),
    "csat": Survey(survey_id="support-csat", name="CSAT", survey_type="csat", scale_min=1, scale_max=5),
    "ces": Survey(survey_id="onboarding-ces", name="CES", survey_type="ces", scale_min=1, scale_max=7),
}
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=255)
values = st.one_of(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=50), st.booleans(),
                   st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False))


@st.composite
def answers(draw: st.DrawFn) -> tuple[ResponseIn, Survey, str | None]:
    kind = draw(st.sampled_from(sorted(SURVEYS)))
    survey = SURVEYS[kind]
    lo, hi = survey.scale
    answer = ResponseIn.model_validate({
        "survey_type": kind,
        "score": draw(st.integers(lo, hi)),
        "account_id": draw(text),
        **({"response_id": draw(text)} if draw(st.booleans()) else {}),
        **({"respondent_id": draw(text)} if draw(st.booleans()) else {}),
        **({"comment": draw(st.text(max_size=5000).filter(lambda c: "\x00" not in c))} if draw(st.booleans())
           else {}),
        "properties": draw(st.dictionaries(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
                                                   max_size=100), values, max_size=50)),
        **({"submitted_at": (NOW - timedelta(days=draw(st.integers(0, 400)))).astimezone(
            timezone(timedelta(hours=draw(st.integers(-12, 12)))))} if draw(st.booleans()) else {}),
    })
    return answer, survey, draw(st.none() | text)


@settings(max_examples=300, deadline=None)
@given(answers())
def test_events_built_from_answers_hold_to_the_event_contract(case: tuple[ResponseIn, Survey, str | None]) -> None:
    answer, survey, idempotency_key = case
    fields = event_fields(answer, survey, now=NOW, source="api", idempotency_key=idempotency_key)
    event = ResponseSubmitted.model_validate(fields)  # every field and rule of the contract, NUL walk included
    # What ingest writes without building the model is byte for byte what encode writes for the model,
    encoded = encoded_event(fields, event_id=event.event_id)
    value = encoded.value
    assert value == encode(event)
    assert (encoded.account_id, encoded.event_type) == (event.account_id, event.type)
    assert decode(RESPONSE_EVENTS, value) == event  # and what consumers read is the same event.
    assert event.response_id == (answer.response_id or idempotency_key or event.response_id)
    assert event.submitted_at.utcoffset() == timedelta(0)  # aware, in UTC
