"""Pulse's scores as CRM account properties: value, sample size and 95 % interval per metric and window."""

from __future__ import annotations

from dataclasses import dataclass

from pulse_shared.events import ScoreUpdated

METRICS = ("nps", "csat", "ces")
WINDOWS = ("30d", "90d")
PARTS = {"": "score", "_n": "sample size", "_ci_low": "95% interval low", "_ci_high": "95% interval high"}
LABELS = {"nps": "NPS", "csat": "CSAT %", "ces": "CES"}


@dataclass(frozen=True)
class PropertyDef:
    """A custom CRM property Pulse writes."""

    name: str
    label: str
    type: str
    field_type: str
    unique: bool = False


def property_name(metric: str, window: str, part: str = "") -> str:
    """The CRM property name, e.g. ``pulse_nps_30d_ci_low``."""
    return f"pulse_{metric}_{window}{part}"


def property_defs(id_property: str) -> list[PropertyDef]:
    """Every custom property Pulse needs on the CRM's company object."""
    defs = [PropertyDef(id_property, "Pulse account id", "string", "text", unique=True)]
    for metric in METRICS:
        for window in WINDOWS:
            for part, what in PARTS.items():
                defs.append(PropertyDef(property_name(metric, window, part),
                                        f"Pulse {LABELS[metric]} {window} {what}", "number", "number"))
    defs.append(PropertyDef("pulse_scores_version", "Pulse scores version", "number", "number"))
    defs.append(PropertyDef("pulse_scores_updated_at", "Pulse scores updated at", "datetime", "date"))
    return defs


def _fmt(value: float | int | None) -> str:
    # An empty string clears a CRM number property: no answers means no score, not a score of 0.
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def score_properties(event: ScoreUpdated) -> dict[str, str]:
    """The property values for one score event."""
    props: dict[str, str] = {}
    for s in event.scores:
        if s.metric not in METRICS or s.window not in WINDOWS:
            continue
        props[property_name(s.metric, s.window)] = _fmt(s.value)
        props[property_name(s.metric, s.window, "_n")] = str(s.n)
        props[property_name(s.metric, s.window, "_ci_low")] = _fmt(s.ci_low)
        props[property_name(s.metric, s.window, "_ci_high")] = _fmt(s.ci_high)
    props["pulse_scores_version"] = str(event.version)
    props["pulse_scores_updated_at"] = str(int(event.computed_at.timestamp() * 1000))
    return props
