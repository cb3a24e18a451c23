"""The Slack message of an alert (Block Kit), with survey text escaped so it cannot ping anyone.

Everything a CSM needs to act without opening another tool: the score and its category, the comment (in
full: a long one continues over several sections), who answered, the account with its segment and its
current 90-day NPS with n, the 95 % interval and the change, a link to the CRM record, and the rule that
fired. Slack's limits are kept (50 blocks, 3,000 characters a section, 150 a header, 10 fields of 2,000),
and clipping never cuts an escape such as ``&amp;`` in half.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from alerts.domain.handling import Handling
from pulse_shared.events import ScoreSummary, category_of

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_FIELD = 2000
MAX_HEADER = 150
MAX_TEXT = 3000  # the notification fallback: Slack truncates past 40,000; keep it short for push notifications
MINUS = "\u2212"  # typographic minus, as Slack renders numbers best
DASH = "\u2013"
SCALE_LABEL = {"nps": "NPS", "csat": "CSAT", "ces": "CES"}
SEVERITY_EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}
PERSONAL = ("comment", "respondent_id", "respondent_email")
USER = re.compile(r"[UW][A-Z0-9]{2,}")


class AlertFacts(BaseModel):
    """What an alert says (stored with the alert; the account context is read when it is rendered)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["answer", "drop"] = "answer"
    rule: str = "detractor"
    rule_type: str = "detractor"
    severity: str = "warning"
    account_id: str
    account_name: str | None = None
    response_id: str | None = None
    survey_type: str | None = None
    score: int | None = None
    scale_min: int | None = None
    scale_max: int | None = None
    sentiment: str | None = None
    comment: str | None = None
    respondent_id: str | None = None
    respondent_email: str | None = None
    source: str = "api"
    labels: dict[str, str] = Field(default_factory=dict)
    keywords: tuple[str, ...] = ()
    #: The fall that fired a significant-drop alert.
    drop: ScoreSummary | None = None
    #: The answer changed and no longer fires this rule (the message says so; a pending alert is withdrawn).
    withdrawn: bool = False
    #: The respondent was erased: personal fields are gone, and the message says why.
    erased: bool = False
    #: An escalation: nobody acknowledged the alert (its id) within this many seconds.
    escalated_from: str | None = None
    escalated_after_s: int | None = None


class AccountContext(BaseModel):
    """What alerts knows about the account when the message is rendered."""

    model_config = ConfigDict(frozen=True)

    name: str | None = None
    scores: tuple[ScoreSummary, ...] = ()
    crm_url: str | None = None


def escape(text: str) -> str:
    """Escape Slack's control characters (``&``, ``<``, ``>``) in user-supplied text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _safe_cut(escaped: str, limit: int) -> int:
    """The longest prefix length <= ``limit`` that does not end inside an escape (``&amp;``)."""
    if len(escaped) <= limit:
        return len(escaped)
    cut = limit
    amp = escaped.rfind("&", max(0, cut - 5), cut)
    if amp != -1 and escaped.find(";", amp, cut) == -1:
        cut = amp
    return cut


def clip(escaped: str, limit: int) -> str:
    """Clip escaped text to ``limit`` characters with an ellipsis, never inside an escape."""
    if len(escaped) <= limit:
        return escaped
    return escaped[: _safe_cut(escaped, limit - 1)] + "…"


def chunks(escaped: str, limit: int) -> list[str]:
    """Split escaped text into pieces of at most ``limit``, preferring whitespace, never inside an escape."""
    pieces: list[str] = []
    rest = escaped
    while len(rest) > limit:
        cut = _safe_cut(rest, limit)
        space = rest.rfind(" ", cut - 200, cut)
        if space > 0:
            cut = space + 1
        pieces.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        pieces.append(rest)
    return pieces


def format_points(value: float | None, *, signed: bool = True) -> str:
    """A score in points, rounded, with its sign (``+12``, ``-4`` with a typographic minus, ``0``)."""
    if value is None:
        return "n/a"
    rounded = round(value)
    if rounded == 0 or not signed:
        return f"{rounded:d}".replace("-", MINUS)
    return f"+{rounded:d}" if rounded > 0 else f"{MINUS}{-rounded:d}"


def describe_summary(summary: ScoreSummary) -> str:
    """``+12 (n = 48, 95 % CI -4 to +27), -8 vs the previous 90d (significant)`` (with typographic minus)."""
    if summary.n == 0 or summary.value is None:
        return f"no answers in the last {summary.window}"
    if summary.metric == "nps":
        value, low, high = (format_points(summary.value), format_points(summary.ci_low),
                            format_points(summary.ci_high))
    elif summary.metric == "csat":
        value, low, high = (f"{summary.value:.0f} %", _num(summary.ci_low, "{:.0f} %"),
                            _num(summary.ci_high, "{:.0f} %"))
    else:
        value, low, high = (f"{summary.value:.2f}", _num(summary.ci_low, "{:.2f}"), _num(summary.ci_high, "{:.2f}"))
    text = f"{value} (n = {summary.n}, 95 % CI {low} to {high})"
    if summary.n < 10:
        text += ", small sample"
    if summary.delta is not None:
        delta = format_points(summary.delta) if summary.metric == "nps" else f"{summary.delta:+.2f}".replace("-", MINUS)
        verdict = "significant" if summary.significant else "not significant"
        text += f", {delta} vs the previous {summary.window} ({verdict})"
    return text


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def _account_line(facts: AlertFacts, context: AccountContext | None) -> str:
    name = facts.account_name or (context.name if context else None)
    label = f"{escape(name)} (`{escape(facts.account_id)}`)" if name else f"`{escape(facts.account_id)}`"
    if context and context.crm_url:
        label += f"\n<{context.crm_url}|Open in CRM>"
    return label


def _category(facts: AlertFacts) -> str:
    """The answer's category in the words the API uses (a CES answer is easy / neutral / difficult)."""
    return category_of(facts.survey_type or "", facts.sentiment or "").capitalize()


def headline(facts: AlertFacts, context: AccountContext | None = None) -> str:
    """The one-line summary (the header, and the notification text)."""
    name = facts.account_name or (context.name if context else None) or facts.account_id
    if facts.kind == "drop" and facts.drop is not None:
        label = SCALE_LABEL.get(facts.drop.metric, facts.drop.metric.upper())
        moved = format_points(facts.drop.delta) if facts.drop.metric == "nps" else f"{facts.drop.delta:+.2f}"
        return f"{label} drop: {name} {moved} over {facts.drop.window}"
    label = SCALE_LABEL.get(facts.survey_type or "", (facts.survey_type or "").upper())
    prefix = "Keywords" if facts.rule_type == "keywords" else _category(facts)
    return f"{prefix}: {name} gave {label} {facts.score}/{facts.scale_max}"


def render(facts: AlertFacts, *, owner_mention: str | None, context: AccountContext | None = None,
           handling: Handling | None = None, buttons_for: str | None = None,
           members: Sequence[AlertFacts] = ()) -> tuple[str, list[dict[str, Any]]]:
    """The notification text and the blocks of an alert; with ``buttons_for`` (its alert id, when Slack
    interactivity is set up) the Acknowledge / Assign to me / Snooze 24 h buttons, and what was done so far.
    With ``members`` (the alerts grouped with it, oldest first) one message lists the whole group."""
    if members:
        return _render_group((facts, *members), owner_mention=owner_mention, context=context, handling=handling,
                             buttons_for=buttons_for)
    title = headline(facts, context)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _plain_clip(title, MAX_HEADER), "emoji": True}},
    ]
    if facts.withdrawn:
        blocks.append(_section(":information_source: *The answer was changed and no longer fires this rule.*"))
    if facts.escalated_from is not None:
        hours = (facts.escalated_after_s or 0) / 3600
        waited = f"{hours:g} h" if hours >= 1 else f"{(facts.escalated_after_s or 0) // 60} min"
        blocks.append(_section(f":rotating_light: *Escalated:* nobody acknowledged this alert within {waited}."))
    if facts.kind == "drop":
        blocks.extend(_drop_blocks(facts, context))
    else:
        blocks.extend(_answer_blocks(facts, context))
    blocks.append(_context_line(facts, owner_mention, (
        f"Response `{clip(escape(facts.response_id), 300)}` via {escape(facts.source)}"
        if facts.response_id and facts.kind == "answer" else None)))
    tail = _handling_blocks(handling, buttons_for)
    blocks = blocks[:MAX_BLOCKS - len(tail)] + tail
    text = clip(escape(title), MAX_TEXT)
    if facts.comment and facts.kind == "answer":
        text = clip(f"{escape(title)}: “{escape(facts.comment)}”", MAX_TEXT)
    return text, blocks[:MAX_BLOCKS]


GROUP_NOUN = {"detractor": ("detractor answer", "detractor answers"),
              "keywords": ("answer with watched words", "answers with watched words"),
              "significant_drop": ("score drop", "score drops")}
#: Items a group message lists in full (one section each); the rest are counted.
MAX_GROUP_ITEMS = 30
GROUP_COMMENT = 600


def group_headline(items: Sequence[AlertFacts], context: AccountContext | None = None) -> str:
    """``5 detractor answers: Acme Corp`` (the header and the notification text of a group)."""
    first = items[0]
    name = first.account_name or (context.name if context else None) or first.account_id
    one, many = GROUP_NOUN.get(first.rule_type, ("alert", "alerts"))
    return f"{len(items)} {one if len(items) == 1 else many}: {name}"


def _render_group(items: Sequence[AlertFacts], *, owner_mention: str | None, context: AccountContext | None,
                  handling: Handling | None, buttons_for: str | None) -> tuple[str, list[dict[str, Any]]]:
    first = items[0]
    title = group_headline(items, context)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _plain_clip(title, MAX_HEADER), "emoji": True}},
    ]
    if first.escalated_from is not None:
        blocks.append(_section(":rotating_light: *Escalated:* nobody acknowledged these alerts in time."))
    if all(item.withdrawn for item in items):
        blocks.append(_section(":information_source: *The answers were changed and no longer fire this rule.*"))
    fields = [_field(f"*Account*\n{_account_line(first, context)}")]
    fields.extend(_segment_and_score(first, context))
    blocks.append({"type": "section", "fields": fields})
    tail = _handling_blocks(handling, buttons_for)
    room = MAX_BLOCKS - len(blocks) - len(tail) - 2  # the context line, and the "more" line
    shown = list(items[:min(MAX_GROUP_ITEMS, room)])
    blocks.extend(_section(_group_item(item)) for item in shown)
    if len(items) > len(shown):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                       f"…and {len(items) - len(shown)} more: `GET /v1/alerts?account_id="
                       f"{clip(escape(first.account_id), 200)}&rule={escape(first.rule)}` lists them all."}]})
    blocks.append(_context_line(first, owner_mention, f"{len(items)} alerts grouped"))
    blocks = blocks[:MAX_BLOCKS - len(tail)] + tail
    latest = next((i for i in reversed(items) if i.comment and not i.withdrawn), None)
    text = clip(escape(title), MAX_TEXT)
    if latest is not None and latest.comment:
        text = clip(f"{escape(title)}, latest: “{escape(latest.comment)}”", MAX_TEXT)
    return text, blocks[:MAX_BLOCKS]


def _group_item(facts: AlertFacts) -> str:
    """One alert of a group: score and category (or the fall), who, the comment (clipped), the response."""
    if facts.kind == "drop" and facts.drop is not None:
        line = f"*{SCALE_LABEL.get(facts.drop.metric, facts.drop.metric.upper())}, {facts.drop.window}:* " + escape(
            describe_summary(facts.drop))
    else:
        label = SCALE_LABEL.get(facts.survey_type or "", (facts.survey_type or "").upper())
        who = facts.respondent_email or facts.respondent_id
        respondent = clip(escape(who), 300) if who else ("_erased on request_" if facts.erased else "_anonymous_")
        line = f"*{_category(facts)} · {label} {facts.score}/{facts.scale_max}* · {respondent}"
        if facts.keywords:
            line += " · " + ", ".join(f"`{escape(k)}`" for k in facts.keywords)
        if facts.comment:
            line += f"\n“{clip(escape(facts.comment), GROUP_COMMENT)}”"
        else:
            line += "\n_Comment erased on request._" if facts.erased else "\n_No comment yet._"
        if facts.response_id:
            line += f"\nResponse `{clip(escape(facts.response_id), 200)}` via {escape(facts.source)}"
    if facts.withdrawn:
        line = ":information_source: _Changed: no longer fires this rule._\n" + line
    return line


def _context_line(facts: AlertFacts, owner_mention: str | None, last: str | None) -> dict[str, Any]:
    """The closing context of a message: the rule and its severity, the owner, and ``last``."""
    bits = [f"{SEVERITY_EMOJI.get(facts.severity, '')} Rule `{escape(facts.rule)}` ({facts.severity})"]
    if owner_mention:
        bits.append(f"Owner: {owner_mention}")
    if last:
        bits.append(last)
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": t.strip()} for t in bits]}


def _when(at: datetime) -> str:
    """A time Slack shows in each reader's own time zone (with a UTC fallback)."""
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{at.strftime('%Y-%m-%d %H:%M UTC')}>"


def _who(user_id: str | None) -> str:
    return f"<@{user_id}>" if user_id and USER.fullmatch(user_id) else "someone"


def _handling_blocks(handling: Handling | None, alert_id: str | None) -> list[dict[str, Any]]:
    done: list[str] = []
    if handling is not None:
        if handling.ack_at is not None:
            done.append(f":white_check_mark: Acknowledged by {_who(handling.ack_by)} {_when(handling.ack_at)}")
        if handling.assigned_at is not None:
            done.append(f":bust_in_silhouette: Assigned to {_who(handling.assignee)} {_when(handling.assigned_at)}")
        if handling.snoozed_until is not None:
            done.append(f":zzz: Snoozed by {_who(handling.snoozed_by)} until {_when(handling.snoozed_until)}")
    blocks: list[dict[str, Any]] = []
    if done:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in done]})
    if alert_id is not None:
        buttons = []
        if handling is None or handling.ack_at is None:
            buttons.append(_button("pulse_ack", "Acknowledge", alert_id, style="primary"))
        buttons.append(_button("pulse_assign", "Assign to me", alert_id))
        buttons.append(_button("pulse_snooze", "Snooze 24 h", alert_id))
        blocks.append({"type": "actions", "block_id": "pulse_actions", "elements": buttons})
    return blocks


def _button(action_id: str, label: str, alert_id: str, *, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "action_id": action_id,
                              "text": {"type": "plain_text", "text": label}, "value": alert_id[:2000]}
    if style:
        button["style"] = style
    return button


def _answer_blocks(facts: AlertFacts, context: AccountContext | None) -> list[dict[str, Any]]:
    label = SCALE_LABEL.get(facts.survey_type or "", (facts.survey_type or "").upper())
    who = facts.respondent_email or facts.respondent_id
    respondent = (escape(who) if who else
                  "_erased on request_" if facts.erased else "_anonymous_")
    fields = [
        _field(f"*Score*\n{label} {facts.score} of {facts.scale_min}{DASH}{facts.scale_max} · {_category(facts)}"),
        _field(f"*Account*\n{_account_line(facts, context)}"),
        _field(f"*Respondent*\n{clip(respondent, 500)}"),
    ]
    fields.extend(_segment_and_score(facts, context))
    blocks: list[dict[str, Any]] = [{"type": "section", "fields": fields[:10]}]
    if facts.keywords:
        blocks.append(_section("*Keywords:* " + ", ".join(f"`{escape(k)}`" for k in facts.keywords)))
    blocks.extend(_comment_blocks(facts, budget=MAX_BLOCKS - len(blocks) - 3))
    return blocks


def _segment_and_score(facts: AlertFacts, context: AccountContext | None) -> list[dict[str, Any]]:
    """The account's segment labels and its current 90-day NPS, as fields."""
    fields = []
    segment = {k: v for k, v in facts.labels.items() if k not in {"survey_type", "source", "account_name"}}
    if segment:
        fields.append(_field("*Segment*\n" + ", ".join(f"{escape(k)}: {escape(v)}" for k, v in
                                                        sorted(segment.items())[:10])))
    nps = _summary(context, "nps", "90d")
    if nps is not None:
        fields.append(_field(f"*Account NPS, 90 days*\n{escape(describe_summary(nps))}"))
    return fields


def _comment_blocks(facts: AlertFacts, *, budget: int) -> list[dict[str, Any]]:
    if not facts.comment:
        note = "_Comment erased on request._" if facts.erased else "_No comment yet._"
        return [_section(f"*Comment*\n{note}")]
    pieces = chunks(escape(facts.comment), MAX_SECTION - 20)
    if len(pieces) > budget:
        pieces = [*pieces[: budget - 1], clip("".join(pieces[budget - 1:]), MAX_SECTION - 20)]
    blocks = [_section(f"*Comment*\n{pieces[0]}")]
    blocks.extend(_section(piece) for piece in pieces[1:])
    return blocks


def _drop_blocks(facts: AlertFacts, context: AccountContext | None) -> list[dict[str, Any]]:
    assert facts.drop is not None
    label = SCALE_LABEL.get(facts.drop.metric, facts.drop.metric.upper())
    fields = [
        _field(f"*{label}, {facts.drop.window}*\n{escape(describe_summary(facts.drop))}"),
        _field(f"*Account*\n{_account_line(facts, context)}"),
    ]
    nps = _summary(context, "nps", "90d")
    if nps is not None and not (facts.drop.metric == "nps" and facts.drop.window == "90d"):
        fields.append(_field(f"*Account NPS, 90 days*\n{escape(describe_summary(nps))}"))
    return [
        {"type": "section", "fields": fields},
        _section("The fall against the previous window is significant at 95 % (intervals do not overlap zero)."),
    ]


def _summary(context: AccountContext | None, metric: str, window: str) -> ScoreSummary | None:
    if context is None:
        return None
    return next((s for s in context.scores if s.metric == metric and s.window == window), None)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION)}}


def _field(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, MAX_FIELD)}


def _plain_clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def without_personal(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Facts with the respondent's personal fields emptied and marked erased."""
    return {**facts, **dict.fromkeys(PERSONAL), "erased": True}
