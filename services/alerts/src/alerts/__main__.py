"""``python -m alerts [serve|migrate|check-config]``: run alerts, apply its migrations, or check its rules file."""

from __future__ import annotations

import argparse
import sys

from alerts.config import load_config
from alerts.main import build_app
from alerts.settings import AlertsSettings
from alerts.tables import SCHEMA
from pulse_shared.cli import service_main
from pulse_shared.settings import ConfigError


def check_config(settings: AlertsSettings, _args: argparse.Namespace) -> int:
    """Validate ``ALERTS_CONFIG_FILE`` and print its rules, or the error with its line."""
    try:
        config = load_config(settings.config_file)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    source = settings.config_file or "built-in defaults"
    sys.stdout.write(f"{source}: {len(config.rules)} rules ({', '.join(r.name for r in config.rules)}), valid\n")
    return 0


if __name__ == "__main__":
    sys.exit(service_main(service="alerts", settings_class=AlertsSettings, build_app=build_app,
                          port=lambda s: s.port, migrations=("alerts.migrations", SCHEMA),
                          commands={"check-config": check_config}))
