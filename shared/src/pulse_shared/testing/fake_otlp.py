"""A local OTLP/HTTP trace collector: records the spans services export, for tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pulse_shared.testing.server import ThreadedServer


@dataclass(frozen=True)
class ExportedSpan:
    """One span as the collector received it."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str


@dataclass
class FakeOtlpCollector:
    """Accepts ``POST /v1/traces`` (protobuf) like an OpenTelemetry collector."""

    spans: list[ExportedSpan] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadedServer | None = None

    @property
    def url(self) -> str:
        """The value for OTEL_EXPORTER_OTLP_ENDPOINT."""
        assert self.server is not None
        return self.server.url

    def app(self) -> FastAPI:
        """The ASGI app of the fake."""
        app = FastAPI()

        @app.post("/v1/traces")
        async def traces(request: Request) -> Response:
            export = ExportTraceServiceRequest.FromString(await request.body())
            received = []
            for resource_spans in export.resource_spans:
                service = next((a.value.string_value for a in resource_spans.resource.attributes
                                if a.key == "service.name"), "")
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        received.append(ExportedSpan(service, span.name, span.trace_id.hex(), span.span_id.hex(),
                                                     span.parent_span_id.hex()))
            with self._lock:
                self.spans.extend(received)
            return Response(status_code=200, media_type="application/x-protobuf")

        return app

    def start(self) -> FakeOtlpCollector:
        """Start serving on a free port."""
        self.server = ThreadedServer(self.app()).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.stop()
