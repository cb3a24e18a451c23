"""``python -m ingest``: run the ingest service."""

from __future__ import annotations

import argparse
import sys

from ingest.main import build_app
from ingest.settings import IngestSettings
from ingest.tables import SCHEMA
from pulse_shared.logs import configure_logging
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.runtime import serve
from pulse_shared.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    """Entry point; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m ingest", description="Pulse ingest service")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
    args = parser.parse_args(argv)
    settings = load_settings(IngestSettings)
    configure_logging("ingest", settings.log_level)
    if args.command == "migrate":
        upgrade_to_head("ingest.migrations", settings.require_database_url(), SCHEMA)
        return 0
    app, runtime = build_app(settings)
    return serve(app, runtime, host=settings.http_host, port=settings.port)


if __name__ == "__main__":
    sys.exit(main())
