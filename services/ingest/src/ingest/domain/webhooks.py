"""Survey tools' webhook payloads mapped onto the one response event (pure; integrations.md).

A later event for the same response (Delighted ``survey_response.updated``, Formbricks
``responseFinished``, Wootric ``updated``...) is an update of that response, never a second one: the
response id is the vendor's, and the revision time is the vendor's own update time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from ingest.domain.catalog import Survey, WebhookMapping
from pulse_shared.events import MAX_COMMENT_CHARS, PropertyValue, ResponseSubmitted, ResponseUpdated


class PayloadError(ValueError):
    """The body is not a payload of this source (400), or lacks what Pulse needs (422)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Mapped:
    """What Pulse takes from one vendor event."""

    response_id: str
    account_id: str
    score: int | str
    submitted_at: datetime
    revised_at: datetime
    update: bool
    comment: str | None = None
    respondent_id: str | None = None
    respondent_email: str | None = None
    properties: dict[str, PropertyValue] = field(default_factory=dict)
    vendor_survey_type: str | None = None


@dataclass(frozen=True)
class Ignored:
    """An event that carries no answer (a decline, a dismissal, a partial response without a score)."""

    reason: str


def parse_body(source: str, body: bytes, content_type: str) -> dict[str, Any]:
    """The payload as a dict; Wootric may send ``response[score]=7&...`` form encoding."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(400, "body is not UTF-8") from exc
    if source == "wootric" and "application/x-www-form-urlencoded" in content_type:
        return _nest(parse_qsl(text, keep_blank_values=True))
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(400, f"body is not JSON: {str(exc)[:200]}") from exc
    if not isinstance(payload, dict):
        raise PayloadError(400, "body is not a JSON object")
    return payload


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise PayloadError(400, f"form field {key!r} conflicts with another field")
            node = child
        node[parts[-1]] = value
    return root


def dig(payload: Any, path: str, root: Any = None) -> Any:
    """The value at a dotted path (``$.`` starts from ``root``), or None."""
    node = root if path.startswith("$.") and root is not None else payload
    for part in path.removeprefix("$.").split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _obj(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(422, f"{name} is missing or not an object")
    return value


def _text(value: Any, name: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise PayloadError(422, f"{name} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PayloadError(422, f"{name} must be a string")
    text = str(value).strip()
    if required and not text:
        raise PayloadError(422, f"{name} is missing")
    return text[:255] if not name.endswith("comment") else text[:MAX_COMMENT_CHARS]


def _score(value: Any, name: str) -> int | str:
    if isinstance(value, bool) or value is None:
        raise PayloadError(422, f"{name} is missing or not a score")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.lstrip("-").isdigit():
            return int(stripped)
        if stripped.lower() in {"good", "bad"}:
            return stripped.lower()
    raise PayloadError(422, f"{name} {value!r} is not a whole-number score")


def _time(value: Any, name: str) -> datetime:
    if isinstance(value, bool) or value is None or value == "":
        raise PayloadError(422, f"{name} is missing")
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        seconds = float(value)
        if seconds > 1e11:  # milliseconds
            seconds /= 1000
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise PayloadError(422, f"{name} {value!r} is not a time") from exc
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise PayloadError(422, f"{name} is not a time")


#: Where each tool lets a sender attach the account id, for the message when it is missing.
ACCOUNT_HINTS = {
    "delighted": "send it as a person property with each survey request (properties[account_id])",
    "typeform": "add a hidden field (account_id) to the form and fill it in the form's link",
    "formbricks": "set a contact attribute (accountId) when you identify the user",
    "wootric": "send it as an end-user property (end_user[properties][account_id])",
    "zendesk": "put the organization's external_id (or another field) in the webhook's JSON body",
    "satismeter": "send it as a user trait (accountId) from your SatisMeter snippet",
    "standard": "send it as data.account_id",
}


def _account_missing(answer: dict[str, Any], root: dict[str, Any], path: str, where: str, kind: str) -> str:
    """Why the account id is not in the payload: where it was looked for, the first step of the path that is
    absent or null, and how to send it."""
    from_root = path.startswith("$.")
    parts = path.removeprefix("$.").split(".")
    prefix = [] if from_root or not where else [where]
    gap = ""
    node: Any = root if from_root else answer
    for depth, step in enumerate(parts[:-1], start=1):  # the steps before the last
        if not isinstance(node, dict):
            break
        if node.get(step) is None:
            gap = f"; {'.'.join(prefix + parts[:depth])} is {'null' if step in node else 'absent'}"
            break
        node = node[step]
    return (f"no account id in the payload: looked for {'.'.join(prefix + parts)} (the source's "
            f"mapping.account_id_field){gap}. To fix: {ACCOUNT_HINTS.get(kind, 'send the account id in it')}, "
            "or point account_id_field at where the payload has it (PUT /v1/admin/webhook-sources/{source})")


def _common(answer: dict[str, Any], root: dict[str, Any], mapping: WebhookMapping, where: str,
            kind: str) -> dict[str, Any]:
    """The account id and segment properties; ``where`` names ``answer`` in the payload, ``kind`` the tool
    (both for the message when the account id is missing)."""
    props: dict[str, PropertyValue] = {}
    for prop, path in mapping.properties_fields.items():
        value = dig(answer, path, root)
        if isinstance(value, str | int | float | bool):
            props[prop] = value
    raw = dig(answer, mapping.account_id_field, root)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise PayloadError(422, _account_missing(answer, root, mapping.account_id_field, where, kind))
    return {
        "account_id": _text(raw, f"account id ({mapping.account_id_field})", required=True),
        "properties": props,
    }


def _optional(answer: dict[str, Any], root: dict[str, Any], path: str | None, fallback: Any) -> Any:
    return dig(answer, path, root) if path else fallback


def map_payload(source: str, payload: dict[str, Any], mapping: WebhookMapping) -> Mapped | Ignored:
    """Map one vendor event (raises PayloadError naming what is missing)."""
    return MAPPERS[source](payload, mapping)


def _delighted(payload: dict[str, Any], mapping: WebhookMapping) -> Mapped | Ignored:
    event = payload.get("event_type")
    if event not in ("survey_response.created", "survey_response.updated"):
        return Ignored(f"event_type {event!r} carries no answer")
    d = _obj(payload.get("event_data"), "event_data")
    raw_person = d.get("person")
    person: dict[str, Any] = raw_person if isinstance(raw_person, dict) else {}
    created = _time(d.get("created_at"), "event_data.created_at")
    return Mapped(
        response_id=str(_text(d.get("id"), "event_data.id", required=True)),
        score=_score(d.get("score"), "event_data.score"),
        comment=_text(d.get("comment"), "event_data.comment"),
        respondent_id=_text(_optional(d, payload, mapping.respondent_id_field, person.get("id")), "respondent id"),
        respondent_email=_text(_optional(d, payload, mapping.respondent_email_field, person.get("email")), "email"),
        submitted_at=created,
        revised_at=_time(d.get("updated_at") or d.get("created_at"), "event_data.updated_at"),
        update=event == "survey_response.updated",
        vendor_survey_type=_text(d.get("survey_type"), "event_data.survey_type"),
        **_common(d, payload, mapping, "event_data", "delighted"),
    )


#: Typeform question types that hold a score.
TYPEFORM_SCORE_TYPES = ("nps", "opinion_scale", "rating")


def _answer_to(answers: list[dict[str, Any]], question: str) -> dict[str, Any] | None:
    """The answer to the question whose ``field.ref`` or ``field.id`` is ``question``."""
    return next((a for a in answers if question in (dig(a, "field.ref"), dig(a, "field.id"))), None)


def _answers_of_type(answers: list[dict[str, Any]], types: tuple[str, ...]) -> list[dict[str, Any]]:
    return [a for a in answers if dig(a, "field.type") in types]


def _question(answer: dict[str, Any]) -> Any:
    """How a message names an answer's question: its ref, else its id."""
    return dig(answer, "field.ref") or dig(answer, "field.id")


def _typeform(payload: dict[str, Any], mapping: WebhookMapping) -> Mapped | Ignored:
    if payload.get("event_type") != "form_response":
        return Ignored(f"event_type {payload.get('event_type')!r} carries no answer")
    fr = _obj(payload.get("form_response"), "form_response")
    raw_answers = fr.get("answers")
    answers = [a for a in raw_answers if isinstance(a, dict)] if isinstance(raw_answers, list) else []
    if mapping.score_field:
        scored = _answer_to(answers, mapping.score_field)
        if scored is None:
            raise PayloadError(422, f"no answer to the question with ref or id {mapping.score_field!r}")
    else:  # the only score question of the form
        typed = _answers_of_type(answers, TYPEFORM_SCORE_TYPES)
        if len(typed) != 1:
            found = f"several score questions ({', '.join(repr(_question(a)) for a in typed)})" if typed else \
                "no answer of type nps or opinion_scale"
            raise PayloadError(422, f"{found}: set the source's mapping.score_field to the ref or id of the score "
                                    "question")
        scored = typed[0]
    choice = scored.get("choice")
    score_value = scored.get("number", choice.get("label") if isinstance(choice, dict) else None)
    # The comment: the configured question's answer, else the form's only long-text answer (none when several).
    long_texts = _answers_of_type(answers, ("long_text",))
    comment = _answer_to(answers, mapping.comment_field) if mapping.comment_field else \
        long_texts[0] if len(long_texts) == 1 else None
    submitted = _time(fr.get("submitted_at"), "form_response.submitted_at")
    return Mapped(
        response_id=str(_text(fr.get("token"), "form_response.token", required=True)),
        score=_score(score_value, f"answer {mapping.score_field or _question(scored)!r}"),
        comment=_text(comment.get("text") if comment is not None else None, "comment"),
        respondent_id=_text(_optional(fr, payload, mapping.respondent_id_field, None), "respondent id"),
        respondent_email=_text(_optional(fr, payload, mapping.respondent_email_field, None), "email"),
        submitted_at=submitted, revised_at=submitted, update=False,
        **_common(fr, payload, mapping, "form_response", "typeform"),
    )


def _formbricks(payload: dict[str, Any], mapping: WebhookMapping) -> Mapped | Ignored:
    event = payload.get("event")
    if event not in ("responseCreated", "responseUpdated", "responseFinished"):
        return Ignored(f"event {event!r} carries no answer")
    if not mapping.score_field:
        raise PayloadError(422, "this source's mapping needs score_field: the id of the score question")
    d = _obj(payload.get("data"), "data")
    raw_values = d.get("data")
    values: dict[str, Any] = raw_values if isinstance(raw_values, dict) else {}
    if values.get(mapping.score_field) in (None, ""):
        return Ignored("the response has no score yet")
    created = _time(d.get("createdAt"), "data.createdAt")
    return Mapped(
        response_id=str(_text(d.get("id"), "data.id", required=True)),
        score=_score(values.get(mapping.score_field), f"data.data.{mapping.score_field}"),
        comment=_text(values.get(mapping.comment_field) if mapping.comment_field else None, "comment"),
        respondent_id=_text(_optional(d, payload, mapping.respondent_id_field, dig(d, "contact.userId")),
                            "respondent id"),
        respondent_email=_text(_optional(d, payload, mapping.respondent_email_field,
                                         dig(d, "contactAttributes.email")), "email"),
        submitted_at=created, revised_at=_time(d.get("updatedAt") or d.get("createdAt"), "data.updatedAt"),
        update=event != "responseCreated",
        **_common(d, payload, mapping, "data", "formbricks"),
    )


def _wootric(payload: dict[str, Any], mapping: WebhookMapping) -> Mapped | Ignored:
    event = payload.get("event_name")
    if event not in ("created", "updated"):
        return Ignored(f"event_name {event!r} carries no answer")
    r = _obj(payload.get("response"), "response")
    if str(r.get("excluded_from_calculations", "false")).lower() == "true":
        return Ignored("the response is excluded from calculations")
    return Mapped(
        response_id=str(_text(r.get("id"), "response.id", required=True)),
        score=_score(r.get("score"), "response.score"),
        comment=_text(r.get("text"), "response.comment"),
        respondent_id=_text(_optional(r, payload, mapping.respondent_id_field,
                                      r.get("external_id") or r.get("end_user_id")), "respondent id"),
        respondent_email=_text(_optional(r, payload, mapping.respondent_email_field, r.get("email")), "email"),
        submitted_at=_time(r.get("created_at"), "response.created_at"),
        revised_at=_time(r.get("updated_at") or r.get("created_at"), "response.updated_at"),
        update=event == "updated",
        vendor_survey_type=_text(payload.get("survey_mode"), "survey_mode"),
        **_common(r, payload, mapping, "response", "wootric"),
    )


def _zendesk(payload: dict[str, Any], mapping: WebhookMapping) -> Mapped | Ignored:
    score = payload.get("score")
    if isinstance(score, str) and score.lower() in {"offered", "unoffered", ""}:
        return Ignored(f"satisfaction rating {score!r} carries no answer")
    at = _time(payload.get("updated_at") or payload.get("created_at"), "updated_at")
    return Mapped(
        response_id=str(_text(payload.get("rating_id") or payload.get("ticket_id"), "ticket_id", required=True)),
        score=_score(score, "score"),
        comment=_text(payload.get("comment"), "comment"),
        respondent_id=_text(_optional(payload, payload, mapping.respondent_id_field, dig(payload, "requester.id")),
                            "respondent id"),
        respondent_email=_text(_optional(payload, payload, mapping.respondent_email_field,
                                         dig(payload, "requester.email")), "email"),
        submitted_at=_time(payload.get("created_at") or payload.get("updated_at"), "created_at"),
        revised_at=at, update=payload.get("created_at") not in (None, payload.get("updated_at")),
        **_common(payload, payload, mapping, "", "zendesk"),
    )


def _satismeter(payload: dict[str, Any], mapping: WebhookMapping) -> Mapped | Ignored:
    if payload.get("event") != "completed":
        return Ignored(f"event {payload.get('event')!r} carries no answer")
    r = _obj(payload.get("response"), "response")
    created = _time(r.get("created"), "response.created")
    return Mapped(
        response_id=str(_text(r.get("id"), "response.id", required=True)),
        score=_score(r.get("rating"), "response.rating"),
        comment=_text(r.get("feedback"), "response.comment"),
        respondent_id=_text(_optional(r, payload, mapping.respondent_id_field, dig(r, "user.userId")),
                            "respondent id"),
        respondent_email=_text(_optional(r, payload, mapping.respondent_email_field, dig(r, "user.email")), "email"),
        submitted_at=created, revised_at=created, update=False,
        **_common(r, payload, mapping, "response", "satismeter"),
    )


def _standard(payload: dict[str, Any], mapping: WebhookMapping) -> Mapped | Ignored:
    kind = payload.get("type")
    if kind not in ("response.created", "response.updated"):
        return Ignored(f"type {kind!r} carries no answer")
    d = _obj(payload.get("data"), "data")
    submitted = _time(d.get("submitted_at"), "data.submitted_at")
    return Mapped(
        response_id=str(_text(d.get("response_id"), "data.response_id", required=True)),
        score=_score(d.get("score"), "data.score"),
        comment=_text(d.get("comment"), "data.comment"),
        respondent_id=_text(_optional(d, payload, mapping.respondent_id_field, d.get("respondent_id")),
                            "respondent id"),
        respondent_email=_text(_optional(d, payload, mapping.respondent_email_field, None), "email"),
        submitted_at=submitted, revised_at=_time(d.get("updated_at") or d.get("submitted_at"), "data.updated_at"),
        update=kind == "response.updated", vendor_survey_type=_text(d.get("survey_type"), "data.survey_type"),
        **_common(d, payload, mapping, "data", "standard"),
    )


MAPPERS = {
    "delighted": _delighted, "typeform": _typeform, "formbricks": _formbricks, "wootric": _wootric,
    "zendesk": _zendesk, "satismeter": _satismeter, "standard": _standard,
}


def to_event(mapped: Mapped, survey: Survey, source: str) -> ResponseSubmitted | ResponseUpdated:
    """The response event of a mapped answer to ``survey`` (raises PayloadError off the scale)."""
    lo, hi = survey.scale
    if mapped.vendor_survey_type and mapped.vendor_survey_type.lower() in {"nps", "csat", "ces"} and \
            mapped.vendor_survey_type.lower() != survey.survey_type:
        raise PayloadError(422, f"the tool says survey type {mapped.vendor_survey_type!r}, the source's survey is "
                                f"{survey.survey_type!r}")
    score = mapped.score
    if isinstance(score, str):  # Zendesk's legacy good/bad needs a two-point scale
        if hi - lo != 1:
            raise PayloadError(422, f"rating {score!r} needs a two-point survey scale, not {lo}..{hi}")
        score = hi if score == "good" else lo
    if not lo <= score <= hi:
        raise PayloadError(422, f"score {score} is outside the survey's scale {lo}..{hi}")
    kind = ResponseUpdated if mapped.update else ResponseSubmitted
    return kind(
        response_id=f"{source}:{mapped.response_id}", account_id=mapped.account_id, survey_type=survey.survey_type,
        score=score, scale_min=lo, scale_max=hi, comment=mapped.comment, respondent_id=mapped.respondent_id,
        respondent_email=mapped.respondent_email, properties=mapped.properties,
        submitted_at=mapped.submitted_at.astimezone(UTC), revised_at=mapped.revised_at.astimezone(UTC),
        source=source, survey_id=survey.survey_id,
    )
