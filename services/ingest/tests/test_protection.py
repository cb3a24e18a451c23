"""Abuse protection (resilience.md rows 6-9) and the admin API."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from ingest.domain.client_address import client_address, proxy_networks
from ingest.protection import RateLimiter
from ingest.settings import IngestSettings
from ingest_fixtures import ADMIN, KEY, OTHER_KEY, Ingest
from pulse_shared.testing.topic_reader import read_topic

ANSWER = {"survey_type": "nps", "score": 9, "account_id": "acme"}
ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}


async def count_on_topic(ingest: Ingest) -> int:
    """How many records the responses topic holds, read to its end offsets."""
    return len(await read_topic(ingest.bootstrap, ingest.topics.responses))


@pytest.mark.parametrize("origin", ["https://evil.example.com", "null", "https://app.example.com.evil.io",
                                    "http://app.example.com", "https://app.example.com:8443"])
async def test_origins_not_on_the_list_are_refused_without_a_cors_grant(ingest: Ingest, origin: str) -> None:
    response = await ingest.client.post(f"/v1/responses?key={KEY}", json=ANSWER, headers={"Origin": origin})
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers
    preflight = await ingest.client.options(f"/v1/responses?key={KEY}", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    assert await count_on_topic(ingest) == 0


async def test_a_listed_origin_gets_an_exact_echo_and_vary(ingest: Ingest) -> None:
    origin = "https://app.example.com"
    preflight = await ingest.client.options(f"/v1/responses?key={KEY}", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "Origin" in preflight.headers["vary"]
    assert "POST" in preflight.headers["access-control-allow-methods"]
    response = await ingest.client.post(f"/v1/responses?key={KEY}", json=ANSWER, headers={"Origin": origin})
    assert response.status_code == 202
    assert response.headers["access-control-allow-origin"] == origin
    assert "Origin" in response.headers["vary"]
    # A refusal after the key and origin were accepted keeps the grant, so the widget can read why.
    invalid = await ingest.client.post(f"/v1/responses?key={KEY}", json={**ANSWER, "score": 11},
                                       headers={"Origin": origin})
    assert invalid.status_code == 422
    assert invalid.headers["access-control-allow-origin"] == origin
    assert "outside the NPS scale" in invalid.json()["detail"]


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401), ({"X-Pulse-Key": "pk_unknown_key_0000000000"}, 401), ({"X-Pulse-Key": "short"}, 401)])
async def test_missing_or_unknown_keys_are_refused(ingest: Ingest, headers: dict[str, str], status: int) -> None:
    response = await ingest.client.post("/v1/responses", json=ANSWER, headers=headers)
    assert response.status_code == status
    assert "key" in response.json()["detail"]


async def test_revoked_keys_and_closed_surveys(ingest: Ingest) -> None:
    assert (await ingest.client.delete(f"/v1/admin/keys/{OTHER_KEY}", headers=ADMIN_H)).status_code == 200
    revoked = await ingest.client.post("/v1/responses", json=ANSWER, headers={"X-Pulse-Key": OTHER_KEY})
    assert revoked.status_code == 401
    survey = (await ingest.client.get("/v1/admin/surveys", headers=ADMIN_H)).json()[0]
    assert survey["survey_id"] == "product-nps"
    closed = await ingest.client.put("/v1/admin/surveys/product-nps", json={**survey, "closed": True}, headers=ADMIN_H)
    assert closed.status_code == 200
    gone = await ingest.client.post("/v1/responses", json=ANSWER, headers={"X-Pulse-Key": KEY})
    assert gone.status_code == 410
    assert await count_on_topic(ingest) == 0


async def test_a_survey_put_takes_its_id_from_the_path(ingest: Ingest) -> None:
    made = await ingest.client.put("/v1/admin/surveys/onboarding-ces", headers=ADMIN_H, json={
        "name": "Onboarding effort", "survey_type": "ces"})
    assert made.status_code == 200, made.text
    assert made.json()["survey_id"] == "onboarding-ces"
    listed = {s["survey_id"] for s in (await ingest.client.get("/v1/admin/surveys", headers=ADMIN_H)).json()}
    assert "onboarding-ces" in listed
    differs = await ingest.client.put("/v1/admin/surveys/onboarding-ces", headers=ADMIN_H, json={
        "survey_id": "other", "name": "x", "survey_type": "ces"})
    assert differs.status_code == 422
    assert "differs" in differs.text
    bad = await ingest.client.put("/v1/admin/surveys/Not%20A%20Slug", headers=ADMIN_H, json={
        "name": "x", "survey_type": "ces"})
    assert bad.status_code == 422
    assert "in the path" in bad.text


async def test_three_times_the_key_rate_gets_429_and_another_key_is_unaffected(ingest: Ingest) -> None:
    await ingest.client.put("/v1/admin/surveys/product-nps", headers=ADMIN_H, json={
        "survey_id": "product-nps", "name": "Product NPS", "survey_type": "nps"})
    created = await ingest.client.post("/v1/admin/surveys/product-nps/keys", headers=ADMIN_H,
                                       json={"rate_per_minute": 60})
    limited = created.json()["key"]
    ingest.app.state.limiter = RateLimiter(clock=lambda: 1000.0)  # time stands still: no refill mid-test
    statuses = []
    for _ in range(30):  # the bucket holds 10 s worth (10 requests); the rest must wait
        r = await ingest.client.post("/v1/responses", json=ANSWER, headers={"X-Pulse-Key": limited})
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
        other = await ingest.client.post("/v1/responses", json=ANSWER, headers={"X-Pulse-Key": KEY})
        assert other.status_code == 202
    assert statuses.count(202) == 10
    assert statuses.count(429) == 20


def test_token_buckets_refill_over_time() -> None:
    limiter = RateLimiter()
    assert [limiter.take("k", 60, now=0.0) for _ in range(10)] == [0.0] * 10
    assert limiter.take("k", 60, now=0.0) == pytest.approx(1.0)
    assert limiter.take("k", 60, now=1.0) == 0.0
    assert limiter.take("other", 60, now=1.0) == 0.0


async def test_bodies_over_the_limit_get_413_quickly_and_without_buffering_them(ingest: Ingest) -> None:
    big = {**ANSWER, "comment": "x" * (33 * 1024)}
    response = await ingest.client.post("/v1/responses", json=big, headers={"X-Pulse-Key": KEY})
    assert response.status_code == 413

    async def chunks(size: int) -> object:
        for _ in range(size // 65536):
            yield b"x" * 65536

    chunked = await ingest.client.post("/v1/responses", content=chunks(10 * 1024 * 1024),  # type: ignore[arg-type]
                                       headers={"X-Pulse-Key": KEY, "content-type": "application/json"})
    assert chunked.status_code == 413
    uploads = [ingest.client.post("/v1/responses/batch", content=chunks(10 * 1024 * 1024),  # type: ignore[arg-type]
                                  headers={"X-Pulse-Key": KEY, "content-type": "application/json"})
               for _ in range(20)]
    assert {r.status_code for r in await asyncio.gather(*uploads)} == {413}
    declared = await ingest.client.post("/v1/responses/batch", content=b"{}", headers={
        "X-Pulse-Key": KEY, "content-type": "application/json", "content-length": str(10 * 1024 * 1024)})
    assert declared.status_code == 413


async def test_admin_api_needs_the_token(ingest: Ingest) -> None:
    assert (await ingest.client.get("/v1/admin/surveys")).status_code == 401
    assert (await ingest.client.get("/v1/admin/surveys", headers={"Authorization": "Bearer nope"})).status_code == 401
    bad = await ingest.client.put("/v1/admin/webhook-sources/delighted", headers=ADMIN_H,
                                  json={"survey_id": "missing", "secrets": ["12345678"],
                                        "mapping": {"account_id_field": "a"}})
    assert bad.status_code == 422
    ok = await ingest.client.put("/v1/admin/webhook-sources/delighted", headers=ADMIN_H,
                                 json={"survey_id": "product-nps", "secrets": ["secret-one", "secret-two"],
                                       "mapping": {"account_id_field": "person_properties.account_id"}})
    assert ok.status_code == 200
    assert "secret-one" not in ok.text
    assert len(ok.json()["secret_fingerprints"]) == 2


async def test_erasure_is_an_event_on_the_responses_topic(ingest: Ingest) -> None:
    assert (await ingest.client.delete("/v1/respondents/u-7?account_id=acme")).status_code == 401
    missing = await ingest.client.delete("/v1/respondents/u-7", headers=ADMIN_H)
    assert missing.status_code == 422
    accepted = await ingest.client.delete("/v1/respondents/u-7?account_id=acme", headers=ADMIN_H)
    assert accepted.status_code == 202
    [message] = await read_topic(ingest.bootstrap, ingest.topics.responses)
    assert message.key == b"acme"
    assert json.loads(message.value)["type"] == "respondent.erased.v1"


async def test_the_openapi_documents_keys_and_refusals(ingest: Ingest) -> None:
    spec = (await ingest.client.get("/openapi.json")).json()
    post = spec["paths"]["/v1/responses"]["post"]
    assert {"401", "403", "410", "413", "422", "429", "503"} <= set(post["responses"])
    # Each refusal says in words when it happens.
    assert all(len(post["responses"][code]["description"]) > 10 for code in ("401", "403", "410", "429", "503"))
    # Every way in is a declared security scheme (so /docs has an Authorize button for each), and each route
    # names the ones it takes.
    schemes = spec["components"]["securitySchemes"]
    assert schemes["WriteKey"] == {**schemes["WriteKey"], "type": "apiKey", "in": "header", "name": "X-Pulse-Key"}
    assert schemes["WriteKeyQuery"] == {**schemes["WriteKeyQuery"], "type": "apiKey", "in": "query", "name": "key"}
    assert schemes["AdminToken"]["scheme"] == "bearer"
    write_key = [{"WriteKey": []}, {"WriteKeyQuery": []}]
    for path, method in (("/v1/responses", "post"), ("/v1/responses/batch", "post"),
                         ("/v1/widget/eligibility", "get"), ("/v1/widget/snooze", "post")):
        assert spec["paths"][path][method]["security"] == write_key, path
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if path.startswith("/v1/admin") or path.startswith("/v1/respondents"):
                assert operation["security"] == [{"AdminToken": []}], path
                # An admin route lists the admin token's refusals, not the write key's.
                assert "401" in operation["responses"], (path, method)
                assert not {"403", "410", "429"} & set(operation["responses"]), (path, method)


async def test_body_limits_and_the_fast_path_apply_below_an_asgi_root_path(ingest: Ingest) -> None:
    """Behind a proxy that mounts ingest under a prefix (ASGI ``root_path``), the batch keeps its own limit
    (a 40 KB batch is not held to the 32 KB single-answer limit) and single answers are still accepted."""
    transport = httpx.ASGITransport(app=ingest.app, root_path="/pulse", client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        items = [{**ANSWER, "response_id": f"rp-{i}", "comment": "y" * 400} for i in range(100)]
        batch = await client.post("/pulse/v1/responses/batch", json={"responses": items},
                                  headers={"X-Pulse-Key": KEY})
        assert batch.status_code == 202, batch.text
        assert batch.json()["accepted"] == 100
        single = await client.post("/pulse/v1/responses", json={**ANSWER, "response_id": "rp-single"},
                                   headers={"X-Pulse-Key": KEY})
        assert single.status_code == 202, single.text
        too_big = await client.post("/pulse/v1/responses", json={**ANSWER, "comment": "x" * (33 * 1024)},
                                    headers={"X-Pulse-Key": KEY})
        assert too_big.status_code == 413


async def test_admin_api_refuses_nul_characters_with_a_422_naming_them(ingest: Ingest) -> None:
    survey = (await ingest.client.get("/v1/admin/surveys", headers=ADMIN_H)).json()[0]
    bad_question = await ingest.client.put(f"/v1/admin/surveys/{survey['survey_id']}", headers=ADMIN_H,
                                           json={**survey, "question": "How likely\x00?"})
    assert bad_question.status_code == 422
    assert "NUL" in bad_question.text
    bad_mapping = await ingest.client.put("/v1/admin/webhook-sources/delighted", headers=ADMIN_H,  # nested model
                                          json={"survey_id": "product-nps", "secrets": ["secret-one"],
                                                "mapping": {"account_id_field": "person_properties.a\x00"}})
    assert bad_mapping.status_code == 422
    assert "NUL" in bad_mapping.text


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    # No trusted proxies: the header is ignored, whatever it says.
    ("203.0.113.9", "1.2.3.4", "203.0.113.9"),
    # Behind the ingress (10.0.0.0/8): the client is the right-most address outside the proxies.
    ("10.0.0.2", "198.51.100.7", "198.51.100.7"),
    ("10.0.0.2", "1.2.3.4, 198.51.100.7", "198.51.100.7"),  # a spoofed first hop is ignored
    ("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.3", "198.51.100.7"),  # two proxies deep
    ("10.0.0.2", "10.0.0.9, 10.0.0.3", "10.0.0.9"),  # only proxies: the left-most
    ("10.0.0.2", "not-an-ip, 198.51.100.7", "198.51.100.7"),
    ("10.0.0.2", "198.51.100.7, garbage", "garbage"),  # a hop we cannot read is not one of our proxies
    ("10.0.0.2", None, "10.0.0.2"),
    # A peer that is not a proxy cannot speak for anyone else.
    ("198.51.100.7", "1.2.3.4", "198.51.100.7"),
    ("2001:db8::1", "1.2.3.4", "2001:db8::1"),
])
def test_the_client_address_cannot_be_forged_with_x_forwarded_for(peer: str, forwarded: str | None,
                                                                   expected: str) -> None:
    proxies = proxy_networks("10.0.0.0/8") if peer.startswith("10.") else ()
    assert client_address(peer, forwarded, proxies) == expected
    assert client_address(peer, forwarded, proxy_networks("10.0.0.0/8, fd00::/8")) == expected


def test_trusted_proxies_are_checked_at_start_and_the_old_setting_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33' is not an IP address or CIDR"):
        IngestSettings(INGEST_TRUSTED_PROXIES="10.0.0.0/33")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="INGEST_TRUST_FORWARDED_FOR was removed"):
        IngestSettings(INGEST_TRUST_FORWARDED_FOR="true")  # type: ignore[call-arg]
    assert IngestSettings(INGEST_TRUSTED_PROXIES="10.0.0.0/8, 192.168.1.7").proxies == proxy_networks(  # type: ignore[call-arg]
        "10.0.0.0/8,192.168.1.7")
