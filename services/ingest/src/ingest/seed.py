"""Loads surveys, write keys and webhook sources from a YAML file (idempotent; run at every start).

Example::

    surveys:
      - survey_id: product-nps
        name: Product NPS
        survey_type: nps
        keys:
          - key: pk_dev_product_nps_000000
            allowed_origins: ["http://localhost:3000"]
    webhook_sources:
      - source: delighted
        survey_id: product-nps
        secrets: ["${DELIGHTED_API_KEY}"]
        mapping: {account_id_field: person_properties.account_id}

``${NAME}`` is replaced by the environment variable NAME, so secrets stay out of the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from ingest.catalog import CatalogStore
from ingest.domain.catalog import Origin, Survey, WebhookSource, WriteKey

_VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


class _SeedKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    label: str | None = None
    allowed_origins: tuple[Origin, ...] = ()
    rate_per_minute: int = 600


class _SeedSurvey(Survey):
    model_config = ConfigDict(frozen=True, extra="forbid")
    keys: tuple[_SeedKey, ...] = ()


class SeedFile(BaseModel):
    """The seed file's shape."""

    model_config = ConfigDict(extra="forbid")
    surveys: list[_SeedSurvey] = Field(default_factory=list)
    webhook_sources: list[WebhookSource] = Field(default_factory=list)


def _expand(value: Any, environ: dict[str, str]) -> Any:
    if isinstance(value, str):
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                raise ValueError(f"seed file refers to ${{{name}}}, which is not set")
            return environ[name]
        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v, environ) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, environ) for k, v in value.items()}
    return value


def parse(path: Path, environ: dict[str, str] | None = None) -> SeedFile:
    """Read and validate a seed file (raises ValueError naming the problem)."""
    data = yaml.safe_load(path.read_text()) or {}
    return SeedFile.model_validate(_expand(data, dict(os.environ if environ is None else environ)))


async def apply(store: CatalogStore, seed: SeedFile) -> None:
    """Upsert everything the seed file names (nothing else is touched)."""
    for survey in seed.surveys:
        await store.upsert_survey(Survey.model_validate(survey.model_dump(exclude={"keys"})))
        for key in survey.keys:
            await store.upsert_key(WriteKey(survey_id=survey.survey_id, **key.model_dump()))
    for source in seed.webhook_sources:
        await store.upsert_source(source)
