"""Which rules an answer or a score change fires (pure: no I/O, no clock)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alerts.config import DetractorRule, DropRule, KeywordRule
from alerts.domain.keywords import matched_keywords
from pulse_shared.events import DEFAULT_SCALES, ResponseSubmitted, ResponseUpdated, ScoreSummary, classify

Answer = ResponseSubmitted | ResponseUpdated
AnyRule = DetractorRule | KeywordRule | DropRule
ALERTING_SENTIMENTS = frozenset({"detractor", "dissatisfied"})


@dataclass(frozen=True)
class Fired:
    """A rule that fired, with what the message should say about why."""

    rule: str
    rule_type: str
    severity: str
    keywords: tuple[str, ...] = ()


def answer_labels(answer: Answer) -> dict[str, str]:
    """The labels routes and rules match an answer by: its segment properties, survey type and source."""
    labels = {key: _label(value) for key, value in answer.properties.items()}
    labels.setdefault("survey_type", answer.survey_type)
    labels.setdefault("source", answer.source)
    return labels


def _label(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def labels_match(wanted: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether every wanted label has that value (case-insensitive)."""
    return all(labels.get(k, "").casefold() == v.casefold() for k, v in wanted.items())


def is_detractor(rule: DetractorRule, answer: Answer) -> bool:
    """Whether the answer is at or below the rule's threshold for its survey type.

    Thresholds are given on the default scales (NPS 0-10, CSAT 1-5, CES 1-7) and rescaled linearly to the
    survey's own scale; without one, the standard categories decide (NPS 0-6, the bottom boxes otherwise).
    """
    threshold = rule.max_score.get(answer.survey_type)
    if threshold is None:
        return classify(answer.survey_type, answer.score, answer.scale_min, answer.scale_max) in ALERTING_SENTIMENTS
    lo, hi = DEFAULT_SCALES[answer.survey_type]
    scaled = answer.scale_min + (threshold - lo) * (answer.scale_max - answer.scale_min) / (hi - lo)
    return answer.score <= scaled + 1e-9


def fired_for_answer(rules: Sequence[AnyRule], answer: Answer) -> list[Fired]:
    """The answer rules (detractor, keywords) this revision of an answer fires, in configuration order."""
    labels = answer_labels(answer)
    fired: list[Fired] = []
    for rule in rules:
        if isinstance(rule, DropRule) or answer.survey_type not in rule.surveys:
            continue
        if not labels_match(rule.labels, labels):
            continue
        if isinstance(rule, DetractorRule):
            if is_detractor(rule, answer):
                fired.append(Fired(rule.name, rule.type, rule.severity))
        else:
            found = matched_keywords(rule.keywords, answer.comment)
            if found:
                fired.append(Fired(rule.name, rule.type, rule.severity, found))
    return fired


def in_drop(rule: DropRule, scores: Sequence[ScoreSummary]) -> ScoreSummary | None:
    """The summary showing a significant fall of the rule's metric with enough answers, else None."""
    for summary in scores:
        if summary.metric != rule.metric or summary.window != rule.window:
            continue
        fell = summary.delta is not None and summary.delta < 0
        if fell and summary.significant and summary.n >= rule.min_n:
            return summary
    return None


def drop_transition(was_active: bool, now_dropped: bool) -> tuple[bool, bool]:
    """(fire, active after): a drop fires once when it starts and again only after it ended."""
    return (now_dropped and not was_active, now_dropped)
