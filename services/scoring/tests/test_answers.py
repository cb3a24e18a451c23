"""The content hash's text: written out for speed, it must stay byte for byte what ``json.dumps`` wrote."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from pulse_shared.events import ResponseSubmitted
from scoring.domain.answers import content_json

T = datetime(2026, 11, 23, tzinfo=UTC)
values = st.one_of(st.text(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                   st.floats(allow_nan=True, allow_infinity=True))
optional_text = st.none() | st.text()


def reference(answer: ResponseSubmitted) -> str:
    """How the hashed text was first produced (stored hashes depend on it)."""
    content = {
        "survey_type": answer.survey_type,
        "score": answer.score,
        "scale": [answer.scale_min, answer.scale_max],
        "comment": answer.comment,
        "respondent_id": answer.respondent_id,
        "respondent_email": answer.respondent_email,
        "properties": answer.properties,
        "survey_id": answer.survey_id,
    }
    return json.dumps(content, sort_keys=True, default=str)


@settings(max_examples=400, deadline=None)
@given(
    survey_type=st.sampled_from(["nps", "csat", "ces"]),
    score=st.integers(-5, 20),
    scale=st.tuples(st.integers(-5, 5), st.integers(6, 20)),
    comment=optional_text,
    respondent_id=optional_text,
    respondent_email=optional_text,
    survey_id=optional_text,
    properties=st.dictionaries(st.text(), values, max_size=6),
)
def test_the_hashed_text_is_exactly_what_json_dumps_writes(
    survey_type: str, score: int, scale: tuple[int, int], comment: str | None, respondent_id: str | None,
    respondent_email: str | None, survey_id: str | None, properties: dict[str, str | bool | int | float],
) -> None:
    answer = ResponseSubmitted.model_construct(
        response_id="r1", account_id="acme", survey_type=survey_type, score=score, scale_min=scale[0],
        scale_max=scale[1], comment=comment, respondent_id=respondent_id, respondent_email=respondent_email,
        properties=properties, submitted_at=T, revised_at=T, survey_id=survey_id,
    )
    assert content_json(answer) == reference(answer)
