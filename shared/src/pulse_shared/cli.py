"""The command line every service shares: ``python -m <service> [serve|migrate|...]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from fastapi import FastAPI
from pydantic import ValidationError

from pulse_shared.logs import configure_logging
from pulse_shared.migrations import upgrade_to_head
from pulse_shared.runtime import Runtime, serve
from pulse_shared.settings import ConfigError, S, load_settings
from pulse_shared.tracing import configure_tracing

log = logging.getLogger(__name__)

Command = Callable[[S, argparse.Namespace], int]


def service_main(
    *,
    service: str,
    settings_class: type[S],
    build_app: Callable[[S], tuple[FastAPI, Runtime]],
    port: Callable[[S], int],
    migrations: tuple[str, str] | None = None,
    commands: dict[str, Command[S]] | None = None,
    arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """Parse the command, load the settings once, configure JSON logs, and run it; return the exit code.

    ``serve`` (the default) runs the service until SIGTERM; ``migrate`` applies the service's migrations
    (``migrations`` = (package, schema)); ``commands`` adds service-specific ones.
    """
    extra = commands or {}
    choices = ["serve", *(["migrate"] if migrations else []), *extra]
    parser = argparse.ArgumentParser(prog=f"python -m {service.replace('-', '_')}", description=f"Pulse {service}")
    parser.add_argument("command", nargs="?", default="serve", choices=choices)
    if arguments is not None:
        arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(settings_class)
    except ValidationError as exc:
        # One line per mistake, naming the variable, instead of a traceback.
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "settings"
            sys.stderr.write(f"{service}: configuration error: {where}: {error['msg']}\n")
        return 2
    configure_logging(service, settings.log_level)
    configure_tracing(service, os.environ)  # the OTel SDK's own variables, read once at start
    if args.command == "migrate" and migrations is not None:
        package, schema = migrations
        upgrade_to_head(package, settings.require_database_url(), schema)
        return 0
    if args.command in extra:
        return extra[args.command](settings, args)
    try:
        app, runtime = build_app(settings)
    except ConfigError as exc:
        # A clear message and a distinct exit code, not a traceback: the operator has a file to fix.
        log.critical("configuration error: %s", exc, extra={"error": str(exc)})
        sys.stderr.write(f"{service}: configuration error: {exc}\n")
        return 2
    return serve(app, runtime, host=settings.http_host, port=port(settings))
