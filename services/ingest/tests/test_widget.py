"""The widget's server side: display rules, shared state across requests, its look and texts, the script's
size. (The widget in a real browser: test_widget_browser.py.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.routing import APIRoute
from pydantic import ValidationError

from ingest.access import submitter
from ingest.domain.catalog import Survey, WriteKey
from ingest.domain.eligibility import Contact, decide, in_sample
from ingest.domain.widget import (
    _BUILT_IN,
    BUILT_IN_LANGUAGES,
    UNSET_QUESTION,
    WidgetSettings,
    WidgetTexts,
    choose_locale,
    contrast,
    on_color,
    presentation,
)
from ingest_fixtures import KEY, Ingest

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
SURVEY = Survey(survey_id="s", name="S", survey_type="nps", recontact_days=90, ask_later_days=7,
                min_days_since_signup=31)


@pytest.mark.parametrize(("contact", "signed_up", "show", "reason"), [
    (Contact(), NOW - timedelta(days=60), True, "eligible"),
    (Contact(last_shown_at=NOW - timedelta(days=89)), None, False, "within the last 90 days"),
    (Contact(last_shown_at=NOW - timedelta(days=91)), None, True, "eligible"),
    (Contact(snoozed_until=NOW + timedelta(days=1)), None, False, "later"),
    (Contact(snoozed_until=NOW - timedelta(seconds=1)), None, True, "eligible"),
    (Contact(), NOW - timedelta(days=30), False, "signed up less than 31 days"),
])
def test_display_rules(contact: Contact, signed_up: datetime | None, show: bool, reason: str) -> None:
    decision = decide(SURVEY, contact, account_id="a", respondent_id="u", now=NOW, signed_up_at=signed_up)
    assert decision.show is show
    assert reason in decision.reason


def test_sampling_is_stable_and_close_to_the_percentage() -> None:
    chosen = [in_sample("s", "a", f"u{i}", 20) for i in range(5000)]
    assert 900 < sum(chosen) < 1100
    assert chosen == [in_sample("s", "a", f"u{i}", 20) for i in range(5000)]
    assert not any(in_sample("s", "a", f"u{i}", 0) for i in range(100))


async def test_asking_records_nothing_and_a_display_starts_the_recontact_period(ingest: Ingest) -> None:
    params = {"key": KEY, "account_id": "acme", "respondent_id": "u-1"}
    who = {"account_id": "acme", "respondent_id": "u-1"}
    first = (await ingest.client.get("/v1/widget/eligibility", params=params)).json()
    assert first["show"] is True
    assert first["survey"]["scale_min"] == 0
    assert first["survey"]["scale_max"] == 10
    # A probe or a crawler asking again changes nothing.
    assert (await ingest.client.get("/v1/widget/eligibility", params=params)).json() == first
    # Two tabs showing at once: one gets it.
    shown = await asyncio.gather(*(ingest.client.post(f"/v1/widget/displays?key={KEY}", json=who) for _ in range(2)))
    assert sorted(r.json()["show"] for r in shown) == [False, True]
    assert {r.json()["reason"] for r in shown} == {"eligible", "just asked elsewhere"}
    second = (await ingest.client.get("/v1/widget/eligibility", params=params)).json()
    assert second == {"show": False, "reason": "asked within the last 90 days", "survey": None}
    again = (await ingest.client.post(f"/v1/widget/displays?key={KEY}", json=who)).json()
    assert again["reason"] == "asked within the last 90 days"
    snoozed = await ingest.client.post(f"/v1/widget/snooze?key={KEY}", json=who)
    assert snoozed.status_code == 204
    third = (await ingest.client.get("/v1/widget/eligibility", params=params)).json()
    assert third["reason"] == "asked to be asked later"
    other = (await ingest.client.get("/v1/widget/eligibility", params={**params, "respondent_id": "u-2"})).json()
    assert other["show"] is True
    assert (await ingest.client.get("/v1/widget/eligibility", params={"key": KEY})).status_code == 422
    missing = await ingest.client.post(f"/v1/widget/displays?key={KEY}", json={"account_id": "acme"})
    assert missing.status_code == 422
    assert "respondent_id" in missing.text


async def test_the_widget_script_stays_inside_its_budget(ingest: Ingest) -> None:
    plain = await ingest.client.get("/widget.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("application/javascript")
    assert "\n * " not in plain.text  # served minified: no comment blocks
    assert len(plain.content) <= 15 * 1024
    zipped = await ingest.client.get("/widget.js", headers={"Accept-Encoding": "gzip, br"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == plain.content  # httpx undid the gzip: the same script
    assert int(zipped.headers["content-length"]) <= 6 * 1024


def test_every_browser_route_answers_its_preflight() -> None:
    from ingest.api.preflight import BROWSER_PATHS
    from ingest.api.responses import router as responses
    from ingest.api.widget import router as widget

    key_routes = {route.path.removeprefix("/v1") for router in (responses, widget) for route in router.routes
                  if isinstance(route, APIRoute) and route.path.startswith("/v1/")
                  and any(d.call is submitter for d in route.dependant.dependencies)}
    assert "/widget/dismissals" in key_routes
    assert key_routes <= set(BROWSER_PATHS)


@pytest.mark.parametrize(("asked", "configured", "chosen"), [
    ("de-AT", [], "de"), ("pt_BR", [], "pt"), ("pt-BR", ["pt-BR"], "pt-BR"), ("PT-br", ["pt-BR"], "pt-BR"),
    ("ar", ["ar"], "ar"), ("ar", [], "en"), (None, [], "en"), ("zz", [], "en"), ("fr-CA", ["fr"], "fr"),
])
def test_the_pages_language_picks_the_texts(asked: str | None, configured: list[str], chosen: str) -> None:
    assert choose_locale(asked, configured) == chosen


def test_presentation_merges_the_surveys_texts_over_the_built_in_ones() -> None:
    settings = WidgetSettings(color="#FFD400", texts={
        "pt": WidgetTexts(send="Mandar", follow_up={"detractor": "O que houve?"}),
        "pt-BR": WidgetTexts(question="Você indicaria a Acme?"),
        "ar": WidgetTexts(question="هل توصي بنا؟")})
    shown = presentation(settings, survey_type="nps", question=UNSET_QUESTION, scale=(0, 10), locale="pt-BR")
    assert (shown.locale, shown.dir) == ("pt-BR", "ltr")
    assert shown.texts["question"] == "Você indicaria a Acme?"
    assert shown.texts["send"] == "Mandar"  # pt under pt-BR
    assert shown.texts["skip"] == "Pular"  # built-in Portuguese under both
    assert shown.follow_up == {"promoter": "Obrigado! Do que você mais gosta?",
                               "passive": "Obrigado! O que tornaria a experiência ainda melhor?",
                               "detractor": "O que houve?"}
    assert shown.categories == ["detractor"] * 7 + ["passive"] * 2 + ["promoter"] * 2
    assert shown.on_color == "#000000"  # on yellow, black reads
    arabic = presentation(settings, survey_type="nps", question="Custom?", scale=(0, 10), locale="ar-EG")
    assert (arabic.dir, arabic.texts["question"], arabic.texts["send"]) == ("rtl", "هل توصي بنا؟", "Send")
    german = presentation(WidgetSettings(), survey_type="ces", question=UNSET_QUESTION, scale=(1, 7), locale="de")
    assert german.texts["question"] == "Wie einfach war es, das zu erledigen, was Sie wollten?"
    assert german.categories == ["difficult"] * 3 + ["neutral"] + ["easy"] * 3
    assert set(german.follow_up) == {"easy", "neutral", "difficult"}
    # A survey's own question is asked as written when it has no text for the page's language.
    assert presentation(WidgetSettings(), survey_type="nps", question="Would you recommend Acme?", scale=(0, 10),
                        locale="de").texts["question"] == "Would you recommend Acme?"


@pytest.mark.parametrize("color", ["#000000", "#ffffff", "#1a5fd0", "#777777", "#ffd400", "#0f766e", "#e11d48"])
def test_the_text_on_the_brand_colour_is_always_readable(color: str) -> None:
    assert contrast(color, on_color(color)) >= 4.5  # WCAG AA for normal text


def test_every_built_in_text_exists_in_every_language() -> None:
    english = set(_BUILT_IN["en"])
    assert all(set(texts) == english for texts in _BUILT_IN.values())
    assert set(BUILT_IN_LANGUAGES) >= {"en", "de", "fr", "es", "pt"}


def test_a_follow_up_for_a_category_the_survey_does_not_have_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"categories a CES survey does not have \(de: detractor\)"):
        Survey.model_validate({"survey_id": "s", "name": "S", "survey_type": "ces",
                               "widget": {"texts": {"de": {"follow_up": {"detractor": "Was war los?"}}}}})
    with pytest.raises(ValidationError, match="the same language twice"):
        WidgetSettings(texts={"de": WidgetTexts(), "DE": WidgetTexts()})
    with pytest.raises(ValidationError, match="color"):
        WidgetSettings(color="blue")


async def test_the_page_asking_sets_sampling_aside_and_only_a_test_mode_key_forces(ingest: Ingest) -> None:
    catalog = ingest.app.state.catalog
    await catalog.upsert_survey(Survey(survey_id="sampled", name="Sampled", survey_type="nps", sample_percent=0,
                                       widget=WidgetSettings(color="#0f766e", placement="center")))
    await catalog.upsert_key(WriteKey(key="pk_test_sampled_000000000001", survey_id="sampled"))
    await catalog.upsert_key(WriteKey(key="pk_test_sampled_testmode_001", survey_id="sampled", test_mode=True))
    who = {"account_id": "acme", "respondent_id": "u-1", "locale": "fr"}
    plain = "/v1/widget/displays?key=pk_test_sampled_000000000001"
    assert (await ingest.client.post(plain, json=who)).json()["reason"] == "not in the 0% sample"
    forced = await ingest.client.post(plain, json={**who, "force": True})
    assert forced.status_code == 403
    assert "test-mode key" in forced.json()["detail"]
    asked = (await ingest.client.post(plain, json={**who, "skip_sampling": True, "color": "#e11d48"})).json()
    assert asked["show"] is True
    widget = asked["survey"]["widget"]
    assert (widget["color"], widget["on_color"], widget["placement"], widget["locale"]) == (
        "#e11d48", "#ffffff", "center", "fr")  # the page's colour over the survey's
    assert asked["survey"]["question"] == widget["texts"]["question"] == (
        "Quelle est la probabilité que vous nous recommandiez à un ami ou un collègue ?")
    again = (await ingest.client.post(plain, json={**who, "skip_sampling": True})).json()
    assert again["reason"] == "asked within the last 90 days"  # recontact rules still hold
    test_mode = "/v1/widget/displays?key=pk_test_sampled_testmode_001"
    assert (await ingest.client.post(test_mode, json={**who, "force": True})).json()["reason"] == (
        "forced (test-mode key)")
    bad = await ingest.client.post(plain, json={**who, "locale": "not a locale", "color": "red"})
    assert bad.status_code == 422
    assert {e["loc"][-1] for e in bad.json()["detail"]} == {"locale", "color"}
    dismissed = await ingest.client.post("/v1/widget/dismissals?key=pk_test_sampled_000000000001",
                                         json={"account_id": "acme", "respondent_id": "u-1"})
    assert dismissed.status_code == 204
    assert (await ingest.client.post("/v1/widget/dismissals?key=pk_test_sampled_000000000001",
                                     json={"account_id": "acme"})).status_code == 422
