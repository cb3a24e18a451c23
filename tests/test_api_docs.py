"""Every service's API documentation is written for its users: each operation has a summary a person wrote
(not the function's name title-cased) and a description, and every data route names its security scheme."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

from alerts.main import build_app as alerts_app
from alerts.settings import AlertsSettings
from crm_sync.main import build_app as crm_app
from crm_sync.settings import CrmSyncSettings
from ingest.main import build_app as ingest_app
from ingest.settings import IngestSettings
from scoring.main import build_app as scoring_app
from scoring.settings import ScoringSettings

#: No connection is made: the apps are built, never started.
UNUSED_DATABASE = "postgresql://pulse:pulse@127.0.0.1:1/pulse"


def _ingest() -> FastAPI:
    return ingest_app(IngestSettings(DATABASE_URL=UNUSED_DATABASE))[0]  # type: ignore[call-arg]


def _scoring() -> FastAPI:
    return scoring_app(ScoringSettings(DATABASE_URL=UNUSED_DATABASE))[0]  # type: ignore[call-arg]


def _alerts() -> FastAPI:
    return alerts_app(AlertsSettings(DATABASE_URL=UNUSED_DATABASE))[0]  # type: ignore[call-arg]


def _crm() -> FastAPI:
    return crm_app(CrmSyncSettings(DATABASE_URL=UNUSED_DATABASE))[0]  # type: ignore[call-arg]


APPS: dict[str, Callable[[], FastAPI]] = {"ingest": _ingest, "scoring": _scoring, "alerts": _alerts, "crm-sync": _crm}


def operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, operation) for path, item in app.openapi()["paths"].items()
            for method, operation in item.items()]


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_operation_has_a_summary_written_for_users(service: str) -> None:
    found = operations(APPS[service]())
    assert len(found) >= 5
    problems: list[str] = []
    for method, path, operation in found:
        summary = operation.get("summary", "")
        # FastAPI's default is the function's name title-cased ("List Surveys" for list_surveys).
        generated = summary == summary.title() and operation["operationId"].startswith(
            summary.lower().replace(" ", "_"))
        assert summary, f"{method} {path} has no summary"
        assert not generated, f"{method} {path}: summary {summary!r} is the function's name; write one for users"
        problems.extend([f"{method} {path} has no description"] if len(operation.get("description", "")) < 20 else [])
    assert problems == []


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_data_route_declares_how_to_authenticate(service: str) -> None:
    app = APPS[service]()
    schemes = app.openapi()["components"]["securitySchemes"]
    # Signed by the sender instead (a survey tool's HMAC, Slack's signing secret): documented in words.
    signed = {"/v1/webhooks/{source}", "/v1/slack/interactions"}
    for method, path, operation in operations(app):
        if path in signed:
            continue
        assert operation.get("security"), f"{method} {path} declares no security scheme"
        for requirement in operation["security"]:
            assert set(requirement) <= set(schemes), (path, requirement)
