"""The seed file creates what is missing and never silently overwrites what the admin API changed since."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import seed
from ingest_fixtures import ADMIN, Ingest
from pulse_shared.settings import ConfigError

ADMIN_H = {"Authorization": f"Bearer {ADMIN}"}

SEED = """
surveys:
  - survey_id: onboarding-ces
    name: Onboarding effort
    survey_type: ces
    keys:
      - key: pk_seed_onboarding_ces_000001
        allowed_origins: ["http://localhost:3000"]
"""


async def test_the_seed_creates_what_is_missing_reports_drift_and_replaces_only_when_asked(
    ingest: Ingest, tmp_path: Path
) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(SEED, encoding="utf-8")
    catalog = ingest.app.state.catalog
    assert await seed.apply(catalog, seed.parse(path)) == []
    await catalog.refresh()
    assert catalog.current.surveys["onboarding-ces"].name == "Onboarding effort"
    # An admin closes the survey and renames it; the next start applies the same seed file.
    survey = catalog.current.surveys["onboarding-ces"].model_dump(mode="json")
    edited = await ingest.client.put("/v1/admin/surveys/onboarding-ces", headers=ADMIN_H,
                                     json={**survey, "closed": True, "name": "Onboarding (closed)"})
    assert edited.status_code == 200
    drift = await seed.apply(catalog, seed.parse(path))
    assert drift == ["survey onboarding-ces: closed, name"]
    await catalog.refresh()
    assert catalog.current.surveys["onboarding-ces"].closed is True  # the admin's edit stands
    # Applying again reports the same drift, and the key (unchanged) is not reported.
    assert await seed.apply(catalog, seed.parse(path)) == drift
    # Replace mode: the file wins, and says what it replaced.
    assert await seed.apply(catalog, seed.parse(path), mode="replace") == drift
    await catalog.refresh()
    assert catalog.current.surveys["onboarding-ces"].closed is False
    assert await seed.apply(catalog, seed.parse(path)) == []


def test_the_dev_keys_origins_follow_ingest_port_and_the_demo_port() -> None:
    dev_seed = Path(__file__).resolve().parents[3] / "deploy" / "dev" / "seed.yaml"
    moved = seed.parse(dev_seed, {"INGEST_PORT": "9123", "PULSE_DEMO_PORT": "3456"})
    key, demo = moved.surveys[0].keys
    assert key.allowed_origins == ("http://localhost:9123", "http://127.0.0.1:9123", "http://localhost:3000")
    assert demo.allowed_origins == ("http://localhost:3456", "http://127.0.0.1:3456")
    assert (key.test_mode, demo.test_mode) == (False, True)
    default = seed.parse(dev_seed, {})
    assert default.surveys[0].keys[0].allowed_origins[0] == "http://localhost:8000"


def test_a_variable_without_a_default_must_be_set(tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(SEED.replace("http://localhost:3000", "${APP_ORIGIN}"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"\$\{APP_ORIGIN\}, which is not set"):
        seed.parse(path, {})
    assert seed.parse(path, {"APP_ORIGIN": "https://app.example.com"}).surveys[0].keys[0].allowed_origins == (
        "https://app.example.com",)


@pytest.mark.parametrize(("text", "message"), [
    ("surveys:\n  - survey_id: s\n    name: S\n    question: Why? {not: closed\n", r"seed.yaml:4: not valid YAML"),
    ("surveys:\n  - survey_id: s\n    name: S\n    survey_type: nps\n    widget:\n      color: blue\n",
     r"seed.yaml:6: surveys\[0\]\.widget\.color: String should match pattern"),
])
def test_a_broken_seed_file_names_its_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        seed.parse(path, {})
