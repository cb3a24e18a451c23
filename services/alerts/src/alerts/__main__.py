"""``python -m alerts [serve|migrate]``: run the alerts service or apply its migrations."""

from __future__ import annotations

import argparse
import sys

from alerts.settings import AlertsSettings
from alerts.tables import SCHEMA
from pulse_shared.logs import configure_logging
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.runtime import serve
from pulse_shared.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    """Entry point; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m alerts", description="Pulse alerts service")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
    args = parser.parse_args(argv)
    settings = load_settings(AlertsSettings)
    configure_logging("alerts", settings.log_level)
    if args.command == "migrate":
        upgrade_to_head("alerts.migrations", settings.require_database_url(), SCHEMA)
        return 0
    from alerts.main import build_app

    app, runtime = build_app(settings)
    return serve(app, runtime, host=settings.http_host, port=settings.port)


if __name__ == "__main__":
    sys.exit(main())
