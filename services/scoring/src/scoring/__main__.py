"""``python -m scoring [serve|migrate]``: run the scoring service or apply its migrations."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict

from pulse_shared.logs import configure_logging
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.runtime import serve
from pulse_shared.settings import load_settings
from scoring.settings import ScoringSettings
from scoring.tables import SCHEMA


def main(argv: list[str] | None = None) -> int:
    """Entry point; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m scoring", description="Pulse scoring service")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate", "rebuild"])
    parser.add_argument("--apply", action="store_true",
                        help="rebuild: replace the aggregates when they differ (default: only report)")
    parser.add_argument("--from-topic", action="store_true",
                        help="rebuild: also make the consumer group re-read the responses topic from the beginning "
                             "on its next start (stop scoring first)")
    args = parser.parse_args(argv)
    settings = load_settings(ScoringSettings)
    configure_logging("scoring", settings.log_level)
    if args.command == "migrate":
        upgrade_to_head("scoring.migrations", settings.require_database_url(), SCHEMA)
        return 0
    if args.command == "rebuild":
        return asyncio.run(_rebuild(settings, apply=args.apply, from_topic=args.from_topic))
    from scoring.main import build_app

    app, runtime = build_app(settings)
    return serve(app, runtime, host=settings.http_host, port=settings.port)


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
    sys.exit(main())
