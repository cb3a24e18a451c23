"""The seed file creates what is missing and never silently overwrites what the admin API changed since."""

from __future__ import annotations

from pathlib import Path

from ingest import seed
from ingest_fixtures import ADMIN, Ingest

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
