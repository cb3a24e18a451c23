"""``python -m ingest [serve|migrate]``: run the ingest service or apply its migrations."""

from __future__ import annotations

import sys

from ingest.main import build_app
from ingest.settings import IngestSettings
from ingest.tables import SCHEMA
from pulse_shared.cli import service_main

if __name__ == "__main__":
    sys.exit(service_main(service="ingest", settings_class=IngestSettings, build_app=build_app,
                          port=lambda s: s.port, migrations=("ingest.migrations", SCHEMA)))
