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

``${NAME}`` is replaced by the environment variable NAME, so secrets stay out of the file; ``${NAME:-default}``
takes ``default`` when NAME is not set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ingest.catalog import CatalogStore
from ingest.domain.catalog import Origin, Survey, WebhookSource, WriteKey
from pulse_shared.settings import ConfigError
from pulse_shared.yaml_files import parse_yaml

_VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


class _SeedKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    label: str | None = None
    allowed_origins: tuple[Origin, ...] = ()
    rate_per_minute: int = 600
    test_mode: bool = False


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
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(f"seed file refers to ${{{name}}}, which is not set")
        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v, environ) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, environ) for k, v in value.items()}
    return value


def parse(path: Path, environ: dict[str, str] | None = None) -> SeedFile:
    """Read and validate a seed file (:class:`ConfigError` naming the file, line and field)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"INGEST_SEED_FILE {path}: cannot be read ({exc.strerror or exc})") from exc
    env = dict(os.environ if environ is None else environ)
    return parse_yaml(text, SeedFile, source=str(path), what="seed file", prepare=lambda data: _expand(data, env))


async def apply(store: CatalogStore, seed: SeedFile, *, mode: Literal["create", "replace"] = "create") -> list[str]:
    """Apply what the seed file names (nothing else is touched) and return the drift found.

    ``create`` (the default) creates what is missing and never overwrites: an item the admin API changed
    since (a closed survey, a key's new origins) is kept as it is, and each difference is reported, naming
    the item and its fields (never their values: they may be secrets). ``replace`` makes the file the truth:
    every item it names is written as the file says.
    """
    await store.refresh()
    current = store.current
    drift: list[str] = []

    def differs(what: str, wanted: dict[str, Any], have: Any) -> bool:
        fields = sorted(k for k, v in wanted.items() if _normal(getattr(have, k, None)) != _normal(v))
        if fields:
            drift.append(f"{what}: {', '.join(fields)}")
        return bool(fields)

    for survey in seed.surveys:
        wanted = Survey.model_validate(survey.model_dump(exclude={"keys"}))
        have = current.surveys.get(survey.survey_id)
        if have is None or (differs(f"survey {survey.survey_id}", wanted.model_dump(), have) and mode == "replace"):
            await store.upsert_survey(wanted)
        for key in survey.keys:
            wanted_key = WriteKey(survey_id=survey.survey_id, **key.model_dump())
            had = current.keys.get(key.key)
            shown = f"key {key.key[:12]}…"
            if had is None or (differs(shown, wanted_key.model_dump(), had) and mode == "replace"):
                await store.upsert_key(wanted_key)
    for source in seed.webhook_sources:
        had_source = current.sources.get(source.source)
        if had_source is None or (differs(f"webhook source {source.source}", source.model_dump(), had_source)
                                  and mode == "replace"):
            await store.upsert_source(source)
    return drift


def _normal(value: Any) -> Any:
    """Values compared as the catalog stores them (tuples and lists alike, models as dicts)."""
    if isinstance(value, BaseModel):
        return _normal(value.model_dump())
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value
