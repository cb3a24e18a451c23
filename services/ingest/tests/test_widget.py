"""The widget: display rules, shared state across requests, and a real headless Chromium."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from ingest.domain.catalog import Survey
from ingest.domain.eligibility import Contact, decide, in_sample
from ingest.tables import SCHEMA
from ingest_fixtures import KEY, Ingest
from pulse_shared.localinfra import free_port
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.testing.processes import ServiceProcess
from pulse_shared.testing.server import ThreadedServer
from pulse_shared.testing.topic_reader import read_topic
from pulse_shared.topics import Topics

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


async def test_widget_script_is_small_and_served(ingest: Ingest) -> None:
    response = await ingest.client.get("/widget.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert len(response.content) < 15 * 1024


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic"]


async def test_in_a_real_browser_an_answer_arrives_on_the_topic_and_a_second_visit_shows_nothing(
    kafka_bootstrap: str, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    ingest_port = free_port()
    html = f"""<!doctype html><html><head><title>Acme app</title></head><body><h1>Acme</h1>
<script src="http://127.0.0.1:{ingest_port}/widget.js" data-pulse-key="{KEY}" data-account-id="acme-42"
        data-respondent-id="user-7" async></script></body></html>"""
    pages = ThreadedServer(Starlette(routes=[Route("/", lambda _request: HTMLResponse(html))]))
    page_origin = pages.url  # another origin than ingest's: the key must allow it
    seed = tmp_path / "seed.yaml"
    seed.write_text(f"""
surveys:
  - survey_id: product-nps
    name: Product NPS
    survey_type: nps
    question: How likely are you to recommend Acme?
    keys:
      - key: {KEY}
        allowed_origins: ["{page_origin}"]
""")
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_ENABLE_IDEMPOTENCE": "false",
           "KAFKA_TOPIC_PREFIX": topics.prefix, "DATABASE_URL": database_url, "INGEST_SEED_FILE": str(seed),
           "INGEST_PORT": str(ingest_port)}
    await asyncio.to_thread(upgrade_to_head, "ingest.migrations", database_url, SCHEMA)
    ingest = await asyncio.to_thread(ServiceProcess("ingest", env=env, port=ingest_port, log_dir=tmp_path).start)
    try:
        pages.start()
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(page_origin)
            dialog = page.get_by_role("dialog")
            await dialog.wait_for(timeout=15_000)
            assert "recommend Acme" in await dialog.inner_text()
            await page.get_by_role("button", name="Score 3 of 10").click()
            await page.get_by_label("Anything you would like to tell us?").fill("Exports keep timing out")
            await page.get_by_role("button", name="Send").click()
            await page.get_by_text("Thank you for your feedback!").wait_for(timeout=10_000)
            await page.wait_for_function("localStorage.getItem('pulse.queue.v1') === '[]'", timeout=15_000)

            second = await context.new_page()
            async with second.expect_response(lambda r: "/v1/widget/eligibility" in r.url) as asked:
                await second.goto(page_origin)
            assert (await (await asked.value).json())["show"] is False  # the widget asked, and was told no
            await second.evaluate("() => new Promise(r => setTimeout(r, 0))")  # the widget's reply handler ran
            assert await second.get_by_role("dialog").count() == 0
            await browser.close()
    finally:
        pages.stop()
        await asyncio.to_thread(ingest.terminate)
    [message] = await read_topic(kafka_bootstrap, topics.responses)
    event = json.loads(message.value)
    assert message.key == b"acme-42"
    assert (event["score"], event["comment"], event["respondent_id"], event["source"]) == (
        3, "Exports keep timing out", "user-7", "widget")
