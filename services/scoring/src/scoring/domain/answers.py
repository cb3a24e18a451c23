"""Which version of an answer wins, and which count bucket an answer occupies.

An answer may arrive several times (retries, redeliveries, replays) and in several revisions (a comment
added later, a score changed). The winner is the latest revision; equal revision times are broken by the
content hash, so any order of arrival ends in the same state.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import NamedTuple

from pulse_shared.events import PropertyValue, ResponseSubmitted, ResponseUpdated

Answer = ResponseSubmitted | ResponseUpdated

#: The segment values an answer is counted under: (property, value) pairs.
Segments = tuple[tuple[str, str], ...]

#: (account_id, day, survey_type, scale_min, scale_max, score, segments sorted by property): one row of
#: ``scoring.daily_counts`` (which keeps the segments as an object, so their order does not matter there).
BucketKey = tuple[str, date, str, int, int, int, Segments]

class Revision(NamedTuple):
    """What decides between two versions of one answer."""

    revised_at: datetime
    content_hash: str

    def supersedes(self, other: Revision) -> bool:
        """Whether this revision replaces ``other`` (later, or same time and greater content hash)."""
        return (self.revised_at, self.content_hash) > (other.revised_at, other.content_hash)


class Placement(NamedTuple):
    """Where an answer is counted: its survey type, scale, score, day and segment values."""

    account_id: str
    survey_type: str
    scale_min: int
    scale_max: int
    score: int
    day: date
    segments: Segments

    def bucket(self) -> BucketKey:
        """The count bucket this answer adds one to (its account, day, score and segment values together)."""
        return (self.account_id, self.day, self.survey_type, self.scale_min, self.scale_max, self.score,
                tuple(sorted(self.segments)))


def content_hash(answer: Answer) -> str:
    """A stable hash of what the respondent said (not of when it was sent or first given: an answer is
    given once, and its time is the earliest ``submitted_at`` of all its revisions)."""
    return hashlib.sha256(content_json(answer).encode()).hexdigest()[:32]


def content_json(answer: Answer) -> str:
    """The hashed text: exactly ``json.dumps(content, sort_keys=True, default=str)`` of the object below
    (stored hashes depend on it; a test holds the two equal), written out because building the object and
    running the general encoder cost twice as much, on every answer::

        {"survey_type", "score", "scale": [min, max], "comment", "respondent_id", "respondent_email",
         "properties", "survey_id"}
    """
    properties = answer.properties
    props = ", ".join(f"{_text(k)}: {_json_value(properties[k])}" for k in sorted(properties))
    return (f'{{"comment": {_optional(answer.comment)}, "properties": {{{props}}}, '
            f'"respondent_email": {_optional(answer.respondent_email)}, '
            f'"respondent_id": {_optional(answer.respondent_id)}, '
            f'"scale": [{int.__repr__(answer.scale_min)}, {int.__repr__(answer.scale_max)}], '
            f'"score": {int.__repr__(answer.score)}, "survey_id": {_optional(answer.survey_id)}, '
            f'"survey_type": {_text(answer.survey_type)}}}')


_text = json.encoder.encode_basestring_ascii  # the encoder's own C function for strings


def _optional(value: str | None) -> str:
    return "null" if value is None else _text(value)


def _json_value(value: PropertyValue) -> str:
    """A property value as ``json.dumps`` writes it."""
    if isinstance(value, str):
        return _text(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def segment_value(value: PropertyValue) -> str:
    """The text a property value is grouped under (booleans as ``true``/``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def segments_of(properties: Mapping[str, PropertyValue], segment_properties: Sequence[str]) -> Segments:
    """The (property, value) segments an answer with ``properties`` is counted in."""
    return tuple(
        (prop, segment_value(properties[prop])[:255]) for prop in segment_properties if prop in properties
    )


def placement(answer: Answer, segment_properties: Sequence[str]) -> Placement:
    """Where ``answer`` is counted, given the configured segment properties."""
    segments = segments_of(answer.properties, segment_properties)
    return Placement(
        account_id=answer.account_id,
        survey_type=answer.survey_type,
        scale_min=answer.scale_min,
        scale_max=answer.scale_max,
        score=answer.score,
        day=day_of(answer.submitted_at),
        segments=segments,
    )


def day_of(moment: datetime) -> date:
    """The UTC day an answer is counted in."""
    return moment.astimezone(UTC).date()


def latest_per_response(answers: Iterable[Answer]) -> dict[tuple[str, str], tuple[Answer, Revision]]:
    """The winning revision of each (account, response) within a batch, carrying the earliest
    ``submitted_at`` of all the batch's revisions of it (an answer's time is its first)."""
    best: dict[tuple[str, str], tuple[Answer, Revision]] = {}
    first_given: dict[tuple[str, str], datetime] = {}
    for answer in answers:
        key = (answer.account_id, answer.response_id)
        first_given[key] = min(first_given.get(key, answer.submitted_at), answer.submitted_at)
        revision = Revision(answer.revised_at, content_hash(answer))
        current = best.get(key)
        if current is None or revision.supersedes(current[1]):
            best[key] = (answer, revision)
    for key, (answer, revision) in best.items():
        if first_given[key] != answer.submitted_at:
            best[key] = (answer.model_copy(update={"submitted_at": first_given[key]}), revision)
    return best

