"""``python -m scoring [serve|migrate|rebuild]``: run scoring, apply its migrations, or rebuild the aggregates."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict

from pulse_shared.cli import service_main
from scoring.main import build_app
from scoring.settings import ScoringSettings
from scoring.tables import SCHEMA


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--apply", action="store_true",
                        help="rebuild: replace the aggregates when they differ (default: only report)")
    parser.add_argument("--from-topic", action="store_true",
                        help="rebuild: also make the consumer group re-read the responses topic from the beginning "
                             "on its next start (stop scoring first)")


def _rebuild_command(settings: ScoringSettings, args: argparse.Namespace) -> int:
    return asyncio.run(_rebuild(settings, apply=args.apply, from_topic=args.from_topic))


async def _rebuild(settings: ScoringSettings, *, apply: bool, from_topic: bool) -> int:
    from pulse_shared.db import create_engine
    from scoring.rebuild import rebuild, reset_offsets

    engine = create_engine(settings.require_database_url(), pool_size=1)
    try:
        report = await rebuild(engine, settings.segments, apply=apply)
        reset = await reset_offsets(engine, settings.consumer_group) if from_topic else None
    finally:
        await engine.dispose()
    out = {**asdict(report), "consistent": report.consistent}
    if reset is not None:
        out["partitions_reset_to_beginning"] = reset
    print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(service_main(service="scoring", settings_class=ScoringSettings, build_app=build_app,
                          port=lambda s: s.port, migrations=("scoring.migrations", SCHEMA),
                          commands={"rebuild": _rebuild_command}, arguments=_arguments))
