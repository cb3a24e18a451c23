"""W3C trace context carried from the ingest request through Kafka headers to every effect.

The trace id is bound to the log context, so one answer's journey can be followed across services in the
logs. When OpenTelemetry export is configured with the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``
or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; ``OTEL_SDK_DISABLED=true`` turns it off), :func:`traced` also
records each unit of work as a span, a child of the propagated ``traceparent``, exported over OTLP/HTTP.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pulse_shared.logs import bind

_tracer: trace.Tracer | None = None
_propagator = TraceContextTextMapPropagator()


def configure_tracing(service: str, environ: Mapping[str, str]) -> bool:
    """Export spans over OTLP/HTTP when the standard OTEL_* variables ask for it; return whether it does.

    The exporter reads its endpoint, headers and timeouts from the same variables itself."""
    global _tracer  # noqa: PLW0603 - one tracer per process, configured once at start-up
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint or environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or f"pulse-{service}"})
    provider = TracerProvider(resource=resource)  # flushes at interpreter exit
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("pulse")
    return True


@contextmanager
def traced(name: str, traceparent: str | None, **attributes: Any) -> Iterator[str]:
    """Run a unit of work in the trace of ``traceparent`` (or a new one): as an exported span when tracing
    is configured, else as a new span id in the same trace. Yields the ``traceparent`` of the work."""
    if _tracer is None:
        yield continue_trace(traceparent)
        return
    carrier = {"traceparent": traceparent} if parse_trace_id(traceparent) else {}
    with _tracer.start_as_current_span(name, context=_propagator.extract(carrier), attributes=attributes) as span:
        context = span.get_span_context()
        value = f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
        _current.set(value)
        bind(trace_id=f"{context.trace_id:032x}")
        yield value

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_current: ContextVar[str | None] = ContextVar("pulse_traceparent", default=None)


def new_traceparent(trace_id: str | None = None) -> str:
    """A fresh ``traceparent`` with a new span id (and a new trace id unless one is given). Random, not
    secret, as OpenTelemetry's own id generator makes them (two syscalls less per request)."""
    return f"00-{trace_id or f'{random.getrandbits(128) or 1:032x}'}-{random.getrandbits(64) or 1:016x}-01"


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
