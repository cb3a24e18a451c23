"""``python -m ingest``: run the ingest service."""

from __future__ import annotations

import sys

from ingest.main import build_app
from ingest.settings import IngestSettings
from pulse_shared.logs import configure_logging
from pulse_shared.runtime import serve


def main() -> int:
    """Serve until SIGTERM; return the exit code."""
    settings = IngestSettings()
    configure_logging("ingest", settings.log_level)
    app, runtime = build_app(settings)
    return serve(app, runtime, host=settings.http_host, port=settings.port)


if __name__ == "__main__":
    sys.exit(main())
