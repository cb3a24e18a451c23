"""The widget in Debian's Chromium (Playwright, no downloaded browser), against ingest as a real process.

One ingest, one page server and one browser serve the module; each test is a fresh browser context with a
respondent of its own. Screenshots are compared with the baselines in ``widget_baselines/``; after a change
to the widget's look, regenerate them with ``make widget-baselines`` and look at the new pictures.
"""

from __future__ import annotations

import asyncio
import html
import importlib.util
import io
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from axe_playwright_python.async_playwright import Axe
from PIL import Image
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ingest.tables import SCHEMA
from pulse_shared.localinfra import create_topics, database_url_for, ensure_database, free_port, plain_database_url
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.testing.fixtures import idempotence_env
from pulse_shared.testing.pictures import changed_share
from pulse_shared.testing.processes import ServiceProcess
from pulse_shared.testing.server import ThreadedServer
from pulse_shared.testing.topic_reader import read_topic
from pulse_shared.topics import Topics

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

NPS_KEY = "pk_test_widget_nps_00000000001"
CSAT_KEY = "pk_test_widget_csat_0000000001"
SAMPLED_KEY = "pk_test_widget_sampled_0000001"
TEST_MODE_KEY = "pk_test_widget_testmode_000001"
BASELINES = Path(__file__).parent / "widget_baselines"
ROOT = Path(__file__).resolve().parents[3]
UPDATE_BASELINES = os.environ.get("PULSE_UPDATE_BASELINES") == "1"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic", "--font-render-hinting=none"]
EVENTS_JS = ("['pulse:shown','pulse:answered','pulse:dismissed'].forEach(function(n){document.addEventListener(n,"
             "function(e){(window.pulseEvents=window.pulseEvents||[]).push([n,e.detail]);});});")
PAGE_CSS = 'body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px}'
HOSTILE_CSS = ("*{box-sizing:content-box}button{background:#ff0000 !important;font-size:30px !important}"
               "h2,p,label{color:#ff00ff !important}.card{display:none !important}body{font-family:Georgia,serif}")

SEED = """
surveys:
  - survey_id: product-nps
    name: Product NPS
    survey_type: nps
    question: How likely are you to recommend Acme?
    widget:
      color: "#0f766e"
      promoter_link: https://reviews.example.com/acme
      texts:
        en: {{follow_up: {{detractor: "What went wrong for you?"}}}}
        de: {{question: "Wie wahrscheinlich ist es, dass Sie Acme empfehlen?"}}
    keys:
      - {{key: {nps}, allowed_origins: ["{origin}"]}}
      - {{key: {test_mode}, allowed_origins: ["{origin}"], test_mode: true}}
      - {{key: pk_dev_product_nps_testmode_01, allowed_origins: ["http://localhost:{demo_port}"], test_mode: true}}
  - survey_id: support-csat
    name: Support CSAT
    survey_type: csat
    question: How satisfied are you with our support?
    widget:
      faces: true
      placement: bottom-left
      escape: later
      texts:
        ar:
          question: ما مدى رضاك عن الدعم؟
          low_label: غير راضٍ إطلاقًا
          high_label: راضٍ جدًا
          send: إرسال
          skip: تخطي
          later: اسألني لاحقًا
          close: إغلاق الاستبيان
          thanks: شكرًا لملاحظاتك!
          dialog_label: استبيان الرأي
          comment_hint: إجابتك (اختياري)
          follow_up: {{satisfied: "ما الذي أعجبك؟", neutral: "ما الذي يجعلها أفضل؟", dissatisfied: "ما الذي حدث؟"}}
    keys:
      - {{key: {csat}, allowed_origins: ["{origin}"]}}
  - survey_id: sampled-nps
    name: Sampled NPS
    survey_type: nps
    sample_percent: 0
    keys:
      - {{key: {sampled}, allowed_origins: ["{origin}"]}}
"""


def page_html(request: Request, ingest_port: int) -> HTMLResponse:
    """A host page. Query: key, who (respondent), lang, dir, hostile (a stylesheet that tries to break the
    widget), csp (a Content-Security-Policy without inline styles), api (no data attributes: the page drives
    Pulse itself), and data-pulse-* overrides."""
    q = request.query_params
    lang, direction = q.get("lang", "en"), q.get("dir", "ltr")
    style = f"<style>{HOSTILE_CSS}</style>" if q.get("hostile") else ""
    overrides = "".join(f' data-pulse-{name}="{html.escape(q[name])}"' for name in ("color", "theme", "placement")
                        if name in q)
    src = f"http://127.0.0.1:{ingest_port}/widget.js"
    if q.get("api"):
        script = f'<script src="{src}"></script>'
    else:
        script = (f'<script src="{src}" data-pulse-key="{q["key"]}" data-account-id="acme-42" '
                  f'data-respondent-id="{html.escape(q["who"])}"{overrides} async></script>')
    body = f"""<!doctype html><html lang="{lang}" dir="{direction}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Acme</title>
<link rel="stylesheet" href="/page.css">{style}
<script>{EVENTS_JS}</script></head><body><main><h1>Acme dashboard</h1><p>Your projects at a glance.</p>
<label>Search <input id="search" autofocus></label> <button id="page-button">New project</button>
<div class="scale" id="probe">probe</div></main>{script}</body></html>"""
    ingest = f"http://127.0.0.1:{ingest_port}"
    csp = {"Content-Security-Policy": f"default-src 'self'; script-src 'self' 'unsafe-inline' {ingest}; "
                                      f"connect-src {ingest}; style-src 'self'"} if q.get("csp") else {}
    return HTMLResponse(body, headers=csp)


@dataclass
class Site:
    """Ingest, the page server and the browser."""

    origin: str
    ingest_url: str
    bootstrap: str
    topics: Topics
    browser: Browser
    ingest_port: int
    demo_port: int

    def url(self, **query: str) -> str:
        return str(httpx.URL(self.origin, params=query))

    async def context(self, **options: Any) -> BrowserContext:
        options.setdefault("reduced_motion", "reduce")
        return await self.browser.new_context(**options)

    async def answers(self, respondent: str) -> list[dict[str, Any]]:
        """Every answer event of ``respondent`` on the responses topic, read to its end."""
        events = [json.loads(r.value) for r in await read_topic(self.bootstrap, self.topics.responses) if r.value]
        return [e for e in events if e.get("respondent_id") == respondent]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(kafka_bootstrap: str, pg_server_url: str, tmp_path_factory: pytest.TempPathFactory,
               ) -> AsyncIterator[Site]:
    tmp = tmp_path_factory.mktemp("widget")
    name = f"pulse_widget_{uuid.uuid4().hex[:10]}"
    database_url = await ensure_database(pg_server_url, name)
    topics = Topics(prefix=f"w{uuid.uuid4().hex[:10]}.")
    await create_topics(kafka_bootstrap, topics.all(), partitions=2)
    ingest_port = free_port()
    pages = ThreadedServer(Starlette(routes=[Route("/", lambda r: page_html(r, ingest_port)),
                                             Route("/page.css", lambda _r: Response(PAGE_CSS, media_type="text/css"))]))
    seed = tmp / "seed.yaml"
    demo_port = free_port()
    seed.write_text(SEED.format(nps=NPS_KEY, csat=CSAT_KEY, sampled=SAMPLED_KEY, test_mode=TEST_MODE_KEY,
                                origin=pages.url, demo_port=demo_port), encoding="utf-8")
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_ENABLE_IDEMPOTENCE": idempotence_env(),
           "KAFKA_TOPIC_PREFIX": topics.prefix, "DATABASE_URL": database_url, "INGEST_SEED_FILE": str(seed),
           "INGEST_PORT": str(ingest_port)}
    await asyncio.to_thread(upgrade_to_head, "ingest.migrations", database_url, SCHEMA)
    ingest = await asyncio.to_thread(ServiceProcess("ingest", env=env, port=ingest_port, log_dir=tmp).start)
    pages.start()
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
            yield Site(pages.url, ingest.url, kafka_bootstrap, topics, browser, ingest_port, demo_port)
            await browser.close()
    finally:
        pages.stop()
        await asyncio.to_thread(ingest.terminate)
        conn = await asyncpg.connect(plain_database_url(database_url_for(pg_server_url, "postgres")))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def respondent() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def shown(page: Page, url: str) -> None:
    """Open ``url`` and wait until the widget has shown."""
    await page.goto(url)
    await page.get_by_role("dialog").wait_for(timeout=15_000)
    await page.wait_for_function("(window.pulseEvents || []).some(e => e[0] === 'pulse:shown')", timeout=15_000)


async def events(page: Page) -> list[tuple[str, dict[str, Any]]]:
    return [(name, detail) for name, detail in await page.evaluate("window.pulseEvents || []")]


async def focused(page: Page) -> dict[str, Any]:
    """What has the focus, looking into the widget's shadow root."""
    return dict(await page.evaluate("""() => {
        let el = document.activeElement;
        while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
        return {tag: el.tagName.toLowerCase(), id: el.id, role: el.getAttribute('role'),
                text: el.textContent.trim(), checked: el.getAttribute('aria-checked'),
                in_widget: el.getRootNode() !== document};
    }"""))


async def no_axe_violations(page: Page, step: str) -> None:
    results = await Axe().run(page)
    assert results.violations_count == 0, f"axe at {step}:\n{results.generate_report()}"


async def queue_empty(page: Page) -> None:
    await page.wait_for_function("localStorage.getItem('pulse.queue.v1') === '[]'", timeout=20_000)


async def test_by_keyboard_only_the_whole_flow_without_stealing_focus(site: Site) -> None:
    who = respondent()
    context = await site.context()
    page = await context.new_page()
    await shown(page, site.url(key=NPS_KEY, who=who))
    # It appeared without taking the focus from the field the user was typing in.
    assert (await focused(page))["id"] == "search"
    await no_axe_violations(page, "the score step")
    await page.keyboard.press("Tab")  # to the page's own button
    await page.keyboard.press("Tab")  # into the widget: its close button
    assert (await focused(page))["tag"] == "button"
    assert (await focused(page))["in_widget"]
    await page.keyboard.press("Tab")  # the scale is one tab stop
    assert (await focused(page))["role"] == "radio"
    await page.keyboard.press("End")
    assert (await focused(page))["text"] == "10"
    await page.keyboard.press("ArrowRight")  # wraps around
    assert (await focused(page))["text"] == "0"
    for _ in range(3):
        await page.keyboard.press("ArrowRight")
    now = await focused(page)
    assert (now["text"], now["checked"]) == ("3", "true")  # arrows move and check
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    assert (await focused(page))["text"] == "Send"
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Shift+Tab")
    assert (await focused(page))["text"] == "3"  # back into the group lands on the checked score
    await page.keyboard.press("Enter")  # sends the score at once
    await page.get_by_label("What went wrong for you?").wait_for()
    assert (await focused(page))["tag"] == "textarea"
    await no_axe_violations(page, "the follow-up step")
    await page.keyboard.type("Exports keep timing out")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    assert (await focused(page))["text"] == "Send"
    await page.keyboard.press("Enter")
    await page.get_by_role("dialog").get_by_text("Thank you for your feedback!").wait_for()
    assert (await focused(page))["text"] == "Thank you for your feedback!"
    await no_axe_violations(page, "the thanks step")
    await queue_empty(page)
    await page.keyboard.press("Escape")
    await page.get_by_role("dialog").wait_for(state="detached")
    assert (await focused(page))["id"] == "page-button"  # focus is back where it was before the widget
    names = [(name, detail.get("score"), detail.get("comment")) for name, detail in await events(page)]
    assert names == [("pulse:shown", None, None), ("pulse:answered", 3, None),
                     ("pulse:answered", 3, "Exports keep timing out")]
    answers = await site.answers(who)
    assert [(a["score"], a["comment"], a["source"]) for a in answers] == [
        (3, None, "widget"), (3, "Exports keep timing out", "widget")]
    assert len({a["response_id"] for a in answers}) == 1  # the comment is an update of the same answer
    await context.close()


async def test_by_pointer_a_promoter_is_offered_the_review_link_and_a_second_visit_shows_nothing(
    site: Site,
) -> None:
    who = respondent()
    context = await site.context()
    page = await context.new_page()
    await shown(page, site.url(key=NPS_KEY, who=who))
    await page.get_by_role("radio", name="9").click()
    await page.get_by_label("Thank you! What do you like most?").wait_for()
    await page.get_by_role("button", name="Skip").click()
    link = page.get_by_role("link", name="Leave us a review")
    assert await link.get_attribute("href") == "https://reviews.example.com/acme"
    await queue_empty(page)
    [answer] = await site.answers(who)  # skipping the follow-up sends nothing more
    assert (answer["score"], answer["comment"]) == (9, None)
    categories = [d.get("category") for name, d in await events(page) if name == "pulse:answered"]
    assert categories == ["promoter"]

    second = await context.new_page()
    async with second.expect_response(lambda r: "/v1/widget/eligibility" in r.url) as asked:
        await second.goto(site.url(key=NPS_KEY, who=who))
    assert (await (await asked.value).json())["reason"] == "asked within the last 90 days"
    await second.evaluate("() => new Promise(r => setTimeout(r, 0))")  # the widget's reply handler ran
    assert await second.get_by_role("dialog").count() == 0
    await context.close()


async def metric(site: Site, outcome: str, survey: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{site.ingest_url}/metrics")).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "pulse_widget_outcomes_total"
               and sample.labels == {"outcome": outcome, "survey_id": survey})


async def test_escape_dismisses_or_asks_later_as_the_survey_says_and_focus_returns(site: Site) -> None:
    context = await site.context()
    page = await context.new_page()
    dismissed_before = await metric(site, "dismissed", "product-nps")
    await shown(page, site.url(key=NPS_KEY, who=respondent()))
    await page.get_by_role("radio", name="5").focus()
    await page.keyboard.press("Escape")
    await page.get_by_role("dialog").wait_for(state="detached")
    assert (await focused(page))["id"] == "search"  # where it was before the user went into the widget
    assert [(n, d["reason"]) for n, d in await events(page) if n == "pulse:dismissed"] == [
        ("pulse:dismissed", "dismissed")]
    await _eventually_metric(site, "dismissed", "product-nps", dismissed_before + 1)

    who = respondent()  # the CSAT survey records Escape as 'ask me later'
    await shown(page, site.url(key=CSAT_KEY, who=who))
    await page.get_by_role("button", name="Close survey").click()
    await page.get_by_role("dialog").wait_for(state="detached")
    assert [d["reason"] for n, d in await events(page) if n == "pulse:dismissed"] == ["later"]
    async with httpx.AsyncClient() as client:
        async def snoozed() -> bool:
            answer = (await client.get(f"{site.ingest_url}/v1/widget/eligibility", params={
                "key": CSAT_KEY, "account_id": "acme-42", "respondent_id": who})).json()
            return bool(answer["reason"] == "asked to be asked later")
        await _eventually(snoozed)
    await context.close()


async def _eventually(check: Any) -> None:
    from pulse_shared.testing.waiting import eventually
    await eventually(check, timeout=15, what="the widget's call")


async def _eventually_metric(site: Site, outcome: str, survey: str, expected: float) -> None:
    async def reached() -> bool:
        return await metric(site, outcome, survey) == expected
    await _eventually(reached)


async def test_the_host_pages_css_does_not_reach_in_and_the_widgets_does_not_leak_out(site: Site) -> None:
    context = await site.context()
    page = await context.new_page()
    await shown(page, site.url(key=NPS_KEY, who=respondent(), hostile="1"))
    style = await page.get_by_role("radio", name="5").evaluate(
        "b => { const s = getComputedStyle(b); return [s.backgroundColor, s.fontSize, s.fontFamily]; }")
    assert style[0] != "rgb(255, 0, 0)"
    assert style[1] == "15px"
    assert "Georgia" in style[2]  # but it speaks in the page's font
    assert await page.get_by_role("dialog").is_visible()  # the page's `.card {display: none}` stays outside
    assert await page.locator("#probe").evaluate("p => getComputedStyle(p).display") == "block"
    question = page.get_by_role("heading", name="How likely are you to recommend Acme?")
    assert await question.evaluate("h => getComputedStyle(h).color") != "rgb(255, 0, 255)"
    await context.close()


async def test_a_page_whose_policy_forbids_inline_styles_still_gets_a_styled_widget(site: Site) -> None:
    context = await site.context()
    page = await context.new_page()
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text
            else None)
    await shown(page, site.url(key=NPS_KEY, who=respondent(), csp="1"))
    card = page.get_by_role("dialog")
    assert await card.evaluate("c => getComputedStyle(c).position") == "fixed"
    assert await card.evaluate("c => getComputedStyle(c).borderRadius") == "14px"
    assert refused == []
    await context.close()


async def test_on_a_phone_a_bottom_sheet_with_the_whole_scale_on_one_row(site: Site) -> None:
    context = await site.context(viewport={"width": 320, "height": 640}, has_touch=True, is_mobile=True)
    page = await context.new_page()
    await shown(page, site.url(key=NPS_KEY, who=respondent()))
    card = await page.get_by_role("dialog").bounding_box()
    assert card is not None
    assert (card["x"], card["width"], card["y"] + card["height"]) == (0, 320, 640)
    boxes = [await page.get_by_role("radio", name=str(score), exact=True).or_(
        page.get_by_role("radio", name=f"{score},")).first.bounding_box() for score in range(11)]
    assert all(b is not None for b in boxes)
    assert len({round(b["y"]) for b in boxes if b}) == 1  # one row
    assert all(b["width"] >= 24 and b["height"] >= 24 for b in boxes if b)
    await page.get_by_role("radio", name="7").tap()
    await page.get_by_label("Thanks! What would make it even better?").wait_for()
    await context.close()


SCREENS = {
    "desktop": {"viewport": {"width": 1024, "height": 640}},
    "phone": {"viewport": {"width": 375, "height": 667}, "is_mobile": True, "has_touch": True},
    "dark": {"viewport": {"width": 1024, "height": 640}, "color_scheme": "dark"},
}


@pytest.mark.parametrize("screen", list(SCREENS))
async def test_screenshots_match_the_baselines(site: Site, screen: str) -> None:
    context = await site.context(**SCREENS[screen])
    page = await context.new_page()
    await shown(page, site.url(key=NPS_KEY, who=respondent()))
    await page.locator("#search").evaluate("s => s.blur()")
    # The card itself (where it sits is checked by the layout tests): a change inside it is a large share.
    picture = await page.get_by_role("dialog").screenshot(animations="disabled", caret="hide")
    await no_axe_violations(page, f"the score step, {screen}")  # contrast in dark mode too
    await context.close()
    baseline = BASELINES / f"{screen}.png"
    if UPDATE_BASELINES:
        BASELINES.mkdir(exist_ok=True)
        baseline.write_bytes(picture)
        return
    assert baseline.exists(), f"no baseline {baseline.name}: run `make widget-baselines`"
    share = changed_share(Image.open(baseline), Image.open(io.BytesIO(picture)))
    assert share < 0.002, f"{share:.2%} of {screen} pixels differ from {baseline.name} (make widget-baselines)"


async def test_right_to_left_and_a_german_page(site: Site) -> None:
    context = await site.context()
    page = await context.new_page()
    await shown(page, site.url(key=CSAT_KEY, who=respondent(), lang="ar", dir="rtl"))
    dialog = page.get_by_role("dialog", name="استبيان الرأي")
    assert await dialog.get_attribute("dir") == "rtl"
    first = await page.get_by_role("radio", name="1, غير راضٍ إطلاقًا").bounding_box()
    last = await page.get_by_role("radio", name="5, راضٍ جدًا").bounding_box()
    assert first
    assert last
    assert first["x"] > last["x"]
    assert await page.get_by_role("radio", name="3").inner_text() == "\U0001f610\n3"  # faces for CSAT
    await no_axe_violations(page, "an RTL page")
    await page.get_by_role("radio", name="1, غير راضٍ إطلاقًا").focus()
    await page.keyboard.press("ArrowLeft")  # in RTL, left is the next score
    assert (await focused(page))["text"].endswith("2")

    await shown(page, site.url(key=NPS_KEY, who=respondent(), lang="de-AT"))
    dialog = page.get_by_role("dialog", name="Feedback-Umfrage")
    assert "Wie wahrscheinlich ist es, dass Sie Acme empfehlen?" in await dialog.inner_text()
    assert await page.get_by_role("button", name="Später fragen").count() == 1
    assert await page.get_by_role("radio", name="0, Sehr unwahrscheinlich").count() == 1
    await no_axe_violations(page, "a German page")
    await context.close()


async def test_the_pages_own_calls_identify_show_force_and_hide(site: Site) -> None:
    context = await site.context()
    page = await context.new_page()
    await page.goto(site.url(api="1"))
    await page.wait_for_function("window.Pulse")
    who = respondent()
    setup = f"Pulse.init({{key: '{SAMPLED_KEY}', auto: false}}); Pulse.identify({{accountId: 'acme-42', " \
            f"respondentId: '{who}'}})"
    await page.evaluate(setup)
    # The sampled survey never shows by itself (0 % sample); the page asking for it bypasses sampling.
    assert await page.evaluate("Pulse.show()") is True
    await page.get_by_role("dialog").wait_for()
    await page.evaluate("Pulse.hide()")
    await page.get_by_role("dialog").wait_for(state="detached")
    assert await page.evaluate("Pulse.show()") is False  # the recontact period still holds
    assert await page.evaluate("Pulse.show({force: true})") is False  # not a test-mode key: refused
    await page.evaluate(setup.replace(SAMPLED_KEY, TEST_MODE_KEY))
    assert await page.evaluate("Pulse.show()") is True
    await page.evaluate("Pulse.hide()")
    assert await page.evaluate("Pulse.show({force: true})") is True  # a test-mode key sets the rules aside
    await page.get_by_role("dialog").wait_for()
    assert [n for n, _d in await events(page)] == ["pulse:shown", "pulse:shown", "pulse:shown"]
    await context.close()


async def test_answers_given_offline_are_delivered_when_the_network_returns(site: Site) -> None:
    who = respondent()
    context = await site.context()
    page = await context.new_page()
    await shown(page, site.url(key=NPS_KEY, who=who))
    await context.set_offline(True)
    await page.get_by_role("radio", name="6").click()
    await page.get_by_label("What went wrong for you?").fill("Offline and slow")
    await page.get_by_role("button", name="Send").click()
    await page.get_by_role("dialog").get_by_text("Thank you for your feedback!").wait_for()
    queued = json.loads(await page.evaluate("localStorage.getItem('pulse.queue.v1')"))
    assert [(q["score"], q["comment"]) for q in queued] == [(6, "Offline and slow")]  # the update replaced it
    await context.set_offline(False)
    await page.evaluate("window.dispatchEvent(new Event('online'))")
    await queue_empty(page)
    answers = await site.answers(who)
    assert [(a["score"], a["comment"]) for a in answers] == [(6, "Offline and slow")]
    await context.close()


async def test_make_runs_demo_page_shows_the_survey_and_shows_it_again(site: Site) -> None:
    spec = importlib.util.spec_from_file_location("pulse_dev_script", ROOT / "scripts" / "dev.py")
    assert spec is not None
    assert spec.loader is not None
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    demo = dev.start_demo({"PULSE_DEMO_PORT": str(site.demo_port), "INGEST_PORT": str(site.ingest_port)})
    assert demo is not None
    try:
        context = await site.context()
        page = await context.new_page()
        await page.goto(f"http://localhost:{site.demo_port}/?locale=fr&theme=dark")
        await page.get_by_role("dialog", name="Sondage de satisfaction").wait_for(timeout=15_000)
        await page.get_by_role("button", name="Fermer le sondage").click()
        await page.get_by_role("dialog").wait_for(state="detached")
        await page.get_by_role("button", name="Show the survey again").click()
        await page.get_by_role("dialog").wait_for()
        assert "pulse:dismissed" in await page.locator("#log").inner_text()
        await context.close()
    finally:
        demo.shutdown()
