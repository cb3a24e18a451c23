"""Pulse's scores as CRM account properties, named and labelled for the people who read them in the CRM.

Per metric (NPS, CSAT, CES) and window (30 and 90 days): the score, its sample size, the 95 % interval, the
change against the previous window of the same length and whether that change is significant. Per account:
the last answer's time, score and survey type, whether the last 30 days hold a detractor, and (only with
``CRM_WRITE_COMMENTS=true``, as it is personal data) the last comment.

Values are strings, as CRMs take them: an empty string clears a property (no answers means no score, not a
score of 0); booleans are ``true``/``false``; times are milliseconds since the epoch.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pulse_shared.events import ScoreSummary, ScoreUpdated

METRICS = ("nps", "csat", "ces")
WINDOWS = ("30d", "90d")
METRIC_LABELS = {"nps": "NPS", "csat": "CSAT %", "ces": "CES"}
WINDOW_LABELS = {"30d": "30 days", "90d": "90 days"}
#: Suffix → (type, field type, label template, description template).
PARTS: dict[str, tuple[str, str, str, str]] = {
    "": ("number", "number", "Pulse {m} ({w})", "{m} over the last {w} (empty without answers)."),
    "_n": ("number", "number", "Pulse {m} responses ({w})", "Number of answers behind Pulse {m} ({w})."),
    "_ci_low": ("number", "number", "Pulse {m} 95% interval low ({w})",
                "Lower end of the 95% confidence interval of Pulse {m} ({w})."),
    "_ci_high": ("number", "number", "Pulse {m} 95% interval high ({w})",
                 "Upper end of the 95% confidence interval of Pulse {m} ({w})."),
    "_change": ("number", "number", "Pulse {m} change vs previous {w}",
                "Pulse {m} minus its value over the {w} before."),
    "_change_significant": ("bool", "booleancheckbox", "Pulse {m} change significant ({w})",
                            "Whether the change of Pulse {m} ({w}) is significant at 95%."),
}
BOOL_OPTIONS = [{"label": "Yes", "value": "true", "displayOrder": 0},
                {"label": "No", "value": "false", "displayOrder": 1}]
SURVEY_OPTIONS = [{"label": "NPS", "value": "nps", "displayOrder": 0},
                  {"label": "CSAT", "value": "csat", "displayOrder": 1},
                  {"label": "CES", "value": "ces", "displayOrder": 2}]
LAST_COMMENT = "pulse_last_comment"
#: The 30-day counts that make a detractor "open".
DETRACTOR_COUNTS = (("nps", "detractors"), ("csat", "dissatisfied"))


@dataclass(frozen=True)
class PropertyDef:
    """A custom CRM property Pulse writes."""

    name: str
    label: str
    type: str
    field_type: str
    description: str = ""
    unique: bool = False
    options: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class LastAnswer:
    """The account's most recent answer, as crm-sync keeps it."""

    response_id: str
    survey_type: str
    score: int
    submitted_at: datetime
    comment: str | None = None


def property_name(metric: str, window: str, part: str = "") -> str:
    """The CRM property name, e.g. ``pulse_nps_30d_ci_low``."""
    return f"pulse_{metric}_{window}{part}"


def property_defs(id_property: str, *, write_comments: bool) -> list[PropertyDef]:
    """Every custom property Pulse needs on the CRM's company object."""
    defs = [PropertyDef(id_property, "Pulse account id", "string", "text",
                        "The account id Pulse knows this company by (set once, unique).", unique=True)]
    for metric in METRICS:
        for window in WINDOWS:
            m, w = METRIC_LABELS[metric], WINDOW_LABELS[window]
            for part, (kind, field_type, label, description) in PARTS.items():
                defs.append(PropertyDef(property_name(metric, window, part), label.format(m=m, w=w), kind, field_type,
                                        description.format(m=m, w=w),
                                        options=BOOL_OPTIONS if kind == "bool" else []))
    defs += [
        PropertyDef("pulse_last_response_at", "Pulse last response", "datetime", "date",
                    "When the account last answered a Pulse survey."),
        PropertyDef("pulse_last_score", "Pulse last score", "number", "number",
                    "The score of the account's last answer (on its survey's scale)."),
        PropertyDef("pulse_last_survey", "Pulse last survey type", "enumeration", "select",
                    "The kind of survey the last answer was for.", options=SURVEY_OPTIONS),
        PropertyDef("pulse_open_detractor", "Pulse open detractor", "bool", "booleancheckbox",
                    "Yes while the last 30 days hold an NPS detractor (0-6) or a dissatisfied CSAT answer.",
                    options=BOOL_OPTIONS),
        PropertyDef("pulse_scores_updated_at", "Pulse scores updated", "datetime", "date",
                    "When Pulse last computed these scores."),
    ]
    if write_comments:
        defs.append(PropertyDef(LAST_COMMENT, "Pulse last comment", "string", "textarea",
                                "The comment of the account's last answer (personal data)."))
    return defs


@functools.cache
def property_types() -> dict[str, str]:
    """Each property Pulse may write → its type (``number``, ``bool``, ``datetime``, ``enumeration``,
    ``string``); the id property, whatever its name, is a string."""
    return {d.name: d.type for d in property_defs("pulse_account_id", write_comments=True)}


def _num(value: float | int | None) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _millis(at: datetime) -> str:
    return str(int(at.timestamp() * 1000))


def score_properties(event: ScoreUpdated) -> dict[str, str]:
    """The score properties of one score event (every metric and window Pulse writes)."""
    props: dict[str, str] = {}
    by_key: dict[tuple[str, str], ScoreSummary] = {(s.metric, s.window): s for s in event.scores}
    for metric in METRICS:
        for window in WINDOWS:
            s = by_key.get((metric, window))
            if s is None:
                continue
            props[property_name(metric, window)] = _num(s.value)
            props[property_name(metric, window, "_n")] = str(s.n)
            props[property_name(metric, window, "_ci_low")] = _num(s.ci_low)
            props[property_name(metric, window, "_ci_high")] = _num(s.ci_high)
            props[property_name(metric, window, "_change")] = _num(s.delta)
            props[property_name(metric, window, "_change_significant")] = _bool(s.significant)
    open_detractor = any(by_key[(metric, "30d")].counts.get(count, 0) > 0
                         for metric, count in DETRACTOR_COUNTS if (metric, "30d") in by_key)
    props["pulse_open_detractor"] = _bool(open_detractor)
    props["pulse_scores_updated_at"] = _millis(event.computed_at)
    return props


def answer_properties(last: LastAnswer | None, *, write_comments: bool) -> dict[str, str]:
    """The last-answer properties (the comment only when comments may be written)."""
    if last is None:
        return {}
    props = {"pulse_last_response_at": _millis(last.submitted_at), "pulse_last_score": str(last.score),
             "pulse_last_survey": last.survey_type}
    if write_comments:
        props[LAST_COMMENT] = last.comment or ""
    return props


def desired_properties(scores: dict[str, str], last: LastAnswer | None, *, write_comments: bool,
                       excluded: frozenset[str] = frozenset()) -> dict[str, str]:
    """Everything the CRM should show for the account, minus properties the CRM cannot take (``excluded``)."""
    props = {**scores, **answer_properties(last, write_comments=write_comments)}
    return {k: v for k, v in props.items() if k not in excluded}


def typed_value(kind: str, value: str) -> Any:
    """A property value (a string, as HubSpot takes it) as JSON for systems that take types (Salesforce, the
    webhook): numbers, booleans, ISO 8601 times in UTC; ``None`` for an empty value."""
    if value == "":
        return None
    if kind == "number":
        number = float(value)
        return int(number) if number.is_integer() else number
    if kind == "bool":
        return value == "true"
    if kind == "datetime":
        return datetime.fromtimestamp(int(value) / 1000, UTC).isoformat(timespec="milliseconds")
    return value


def changed(desired: dict[str, str], sent: dict[str, str]) -> dict[str, str]:
    """The properties whose value differs from what the CRM was last sent (``sent`` holds digests)."""
    return {k: v for k, v in desired.items() if sent.get(k) != digest(v)}


def digest(value: str) -> str:
    """A short digest of a sent value: enough to tell a change, without keeping personal data at rest."""
    return hashlib.blake2b(value.encode(), digest_size=8).hexdigest()
