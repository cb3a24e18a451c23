"""``python -m alerts [serve|migrate]``: run the alerts service or apply its migrations."""

from __future__ import annotations

import sys

from alerts.main import build_app
from alerts.settings import AlertsSettings
from alerts.tables import SCHEMA
from pulse_shared.cli import service_main

if __name__ == "__main__":
    sys.exit(service_main(service="alerts", settings_class=AlertsSettings, build_app=build_app,
                          port=lambda s: s.port, migrations=("alerts.migrations", SCHEMA)))
