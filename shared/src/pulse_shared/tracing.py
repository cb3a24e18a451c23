"""W3C trace context carried from the ingest request through Kafka headers to every effect.

The trace id is bound to the log context, so one answer's journey can be followed across services in the
logs. (OpenTelemetry export builds on the same ``traceparent`` header.)
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from contextvars import ContextVar

from pulse_shared.logs import bind

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_current: ContextVar[str | None] = ContextVar("pulse_traceparent", default=None)


def new_traceparent(trace_id: str | None = None) -> str:
    """A fresh ``traceparent`` with a new span id (and a new trace id unless one is given)."""
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def parse_trace_id(traceparent: str | None) -> str | None:
    """The trace id of a valid ``traceparent`` header, else ``None``."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if not match or match.group(1) == "0" * 32:
        return None
    return match.group(1)


def continue_trace(traceparent: str | None) -> str:
    """Continue the caller's trace (or start one), make it current and bind its id to the logs."""
    trace_id = parse_trace_id(traceparent)
    value = new_traceparent(trace_id)
    _current.set(value)
    bind(trace_id=value[3:35])
    return value


def current_traceparent() -> str | None:
    """The ``traceparent`` of the current task, if any."""
    return _current.get()


def traceparent_from_headers(headers: Iterable[tuple[str, bytes]]) -> str | None:
    """The ``traceparent`` among Kafka message headers, if present."""
    for key, value in headers:
        if key == "traceparent":
            return value.decode("ascii", "replace")
    return None
