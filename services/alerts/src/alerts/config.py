"""Alert rules and routes as configuration (``ALERTS_CONFIG_FILE``, YAML), validated once at start.

A mistake is reported with the file, the line and the field (``alerts.yaml:14: rules[1].keywords: ...``),
so an operator can fix it without reading code. Without a file, the defaults apply: one ``detractor`` rule
(NPS <= 6, CSAT <= 2 on 1-5, CES <= 3 on 1-7) routed to the account owner's DM.

```yaml
rules:
  - name: detractor
    type: detractor            # detractor | keywords | significant_drop
    surveys: [nps, csat, ces]  # optional
    max_score: {nps: 6}        # optional, on the default scales (rescaled for other scales)
    labels: {plan: enterprise} # optional: the answer's segment properties must match
    severity: warning          # info | warning | critical
  - name: churn-words
    type: keywords
    keywords: [cancel, switch, refund, "unsubscrib*"]
  - name: nps-drop
    type: significant_drop
    metric: nps
    window: 30d
    min_n: 30
routes:
  receivers: [owner]           # owner (DM, falling back to the route's channel) or channel:C0123ABC
  channel: C0123ABC            # fallback of owner receivers; inherited by child routes
  routes:
    - match: {rule: churn-words}
      receivers: [owner, "channel:C0CHURN01"]
      continue: true
      group_wait: 30s          # alerts of one account and rule within 30 s: one message listing them
      group_interval: 5m       # later ones edit that message until 5 min after it was posted
```
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pulse_shared.settings import ConfigError, check_timezone
from pulse_shared.yaml_files import parse_yaml

Severity = Literal["info", "warning", "critical"]
SurveyKind = Literal["nps", "csat", "ces"]
#: Slack conversation ids: public (C) and private (G) channels. Names cannot be read back, ids can.
CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{6,}$")
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEFAULT_ESCALATE_AFTER = "4h"
DEFAULT_GROUP_INTERVAL = "5m"


def duration_seconds(text: str) -> float:
    """``90s``, ``30m``, ``4h``, ``1d`` as seconds; a clear error for anything else."""
    match = DURATION.match(text.strip())
    if match is None or int(match[1]) == 0:
        raise ValueError(f"{text!r} is not a duration: use a positive number and s, m, h or d (like 4h)")
    return float(int(match[1]) * DURATION_UNITS[match[2]])


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def check_channel(value: str) -> str:
    """A Slack channel id (``C0123ABC``), or a clear error for a channel name."""
    if not CHANNEL_ID.match(value):
        raise ValueError(
            f"{value!r} is not a Slack channel id: use the id (like C0123ABCD, shown at the bottom of the channel's "
            "details in Slack), not its name, so an interrupted post can be read back instead of repeated"
        )
    return value


class DetractorRule(_Strict):
    """An answer at or below the detractor threshold of its survey type."""

    name: Annotated[str, Field(pattern=NAME.pattern)]
    type: Literal["detractor"]
    surveys: tuple[SurveyKind, ...] = ("nps", "csat", "ces")
    #: Highest alerting score per survey type, on its default scale (NPS 0-10, CSAT 1-5, CES 1-7).
    max_score: dict[SurveyKind, float] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    severity: Severity = "warning"


class KeywordRule(_Strict):
    """A comment containing one of the keywords (whole words, case and accents ignored; ``word*`` a prefix)."""

    name: Annotated[str, Field(pattern=NAME.pattern)]
    type: Literal["keywords"]
    keywords: Annotated[tuple[Annotated[str, Field(min_length=1, max_length=100)], ...], Field(min_length=1)]
    surveys: tuple[SurveyKind, ...] = ("nps", "csat", "ces")
    labels: dict[str, str] = Field(default_factory=dict)
    severity: Severity = "critical"

    @field_validator("keywords")
    @classmethod
    def _words(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for word in value:
            core = word.removesuffix("*")
            if not core.strip() or "*" in core:
                raise ValueError(f"keyword {word!r}: a word or phrase, optionally ending in * for a prefix")
        return value


class DropRule(_Strict):
    """The account's score fell against the previous window, significantly at 95 %, with enough answers."""

    name: Annotated[str, Field(pattern=NAME.pattern)]
    type: Literal["significant_drop"]
    metric: SurveyKind = "nps"
    window: Literal["30d", "90d"] = "30d"
    min_n: int = Field(30, ge=1)
    labels: dict[str, str] = Field(default_factory=dict)
    severity: Severity = "warning"


Rule = Annotated[DetractorRule | KeywordRule | DropRule, Field(discriminator="type")]


class Match(_Strict):
    """What a route matches: a rule name, a severity, segment labels (all given must match)."""

    rule: str | None = None
    severity: Severity | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class QuietHoursConfig(_Strict):
    """``{start: "20:00", end: "08:00", tz: Europe/Berlin}``: alerts raised in this daily window wait for its end."""

    start: str
    end: str
    tz: str = "UTC"

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        try:
            time.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a time of day (HH:MM)") from exc
        return value

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_timezone(value)


class Route(_Strict):
    """A node of the route tree (as in Alertmanager): the first matching child wins unless ``continue``."""

    match: Match = Field(default_factory=Match)
    receivers: tuple[str, ...] | None = None
    channel: str | None = None
    #: Where an alert nobody acknowledged goes after ``escalate_after``: a team channel or PagerDuty (inherited).
    escalate_to: str | None = None
    escalate_after: str | None = None
    #: Alerts wait through this daily window (inherited); at most one post per (account, rule) per cooldown.
    quiet_hours: QuietHoursConfig | None = None
    cooldown: str | None = None
    #: Alerts of one account and rule arriving within ``group_wait`` of the first go out as one message;
    #: later ones join it (an edit) until ``group_interval`` after it was posted (inherited).
    group_wait: str | None = None
    group_interval: str | None = None
    continue_: bool = Field(False, alias="continue")
    routes: tuple[Route, ...] = ()

    @field_validator("escalate_to")
    @classmethod
    def _escalate_to(cls, value: str | None) -> str | None:
        if value is None or value == "pagerduty":
            return value
        kind, _, channel = value.partition(":")
        if kind != "channel":
            raise ValueError(f"escalate_to {value!r}: use 'pagerduty' or 'channel:<channel id>'")
        check_channel(channel)
        return value

    @field_validator("escalate_after", "cooldown", "group_wait", "group_interval")
    @classmethod
    def _escalate_after(cls, value: str | None) -> str | None:
        if value is not None:
            duration_seconds(value)
        return value

    @field_validator("receivers")
    @classmethod
    def _receivers(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for receiver in value or ():
            if receiver == "owner":
                continue
            kind, _, channel = receiver.partition(":")
            if kind != "channel":
                raise ValueError(f"receiver {receiver!r}: use 'owner' or 'channel:<channel id>'")
            check_channel(channel)
        if value is not None and not value:
            raise ValueError("a route needs at least one receiver")
        return value

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        return None if value is None else check_channel(value)


class AlertsConfig(_Strict):
    """Rules and the route tree."""

    rules: tuple[Rule, ...] = (DetractorRule(name="detractor", type="detractor"),)
    routes: Route = Field(default_factory=lambda: Route(receivers=("owner",)))

    @model_validator(mode="after")
    def _consistent(self) -> AlertsConfig:
        names = [r.name for r in self.rules]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise ValueError(f"rule name {duplicate!r} is used twice")
        unknown = sorted({m for m in _matched_rules(self.routes) if m not in names})
        if unknown:
            raise ValueError(f"routes match unknown rules: {', '.join(unknown)} (rules are: {', '.join(names)})")
        if self.routes.receivers is None:
            raise ValueError("the root route needs receivers (for example [owner])")
        return self


def _matched_rules(route: Route) -> list[str]:
    found = [route.match.rule] if route.match.rule else []
    for child in route.routes:
        found.extend(_matched_rules(child))
    return found


def load_config(path: Path | None) -> AlertsConfig:
    """The configuration in ``path`` (the defaults when None); :class:`ConfigError` naming line and field."""
    if path is None:
        return AlertsConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"ALERTS_CONFIG_FILE {path}: cannot be read ({exc.strerror or exc})") from exc
    return parse_config(text, source=str(path))


def parse_config(text: str, *, source: str = "alerts config") -> AlertsConfig:
    """Parse and validate YAML text; errors name ``source``, the line and the field."""
    return parse_yaml(text, AlertsConfig, source=source, what="alerts configuration", user_loc=_user_loc)


def _user_loc(loc: Sequence[int | str]) -> list[int | str]:
    """The location without pydantic's union tags (``rules.0.keywords.keywords`` → ``rules.0.keywords``)."""
    tags = {"detractor", "keywords", "significant_drop"}
    out: list[int | str] = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and part in tags and i > 0 and isinstance(loc[i - 1], int):
            continue
        out.append("continue" if part == "continue_" else part)
    return out
