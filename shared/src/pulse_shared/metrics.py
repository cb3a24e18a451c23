"""Prometheus metrics common to every service (names follow the Prometheus conventions).

Service-specific metrics are declared in the service; these cover HTTP, Kafka consumption and production,
dead letters, outboxes and calls to external systems, so dashboards and alerts work the same everywhere.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

HTTP_REQUESTS = Counter(
    "pulse_http_requests_total", "HTTP requests served.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "pulse_http_request_duration_seconds",
    "HTTP request latency.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
EVENTS_PRODUCED = Counter(
    "pulse_events_produced_total", "Events the broker acknowledged or refused.", ["topic", "outcome"]
)
EVENTS_CONSUMED = Counter(
    "pulse_events_consumed_total", "Events consumed and processed.", ["topic", "group"]
)
CONSUMER_LAG = Gauge(
    "pulse_consumer_lag", "Messages behind the partition's high watermark.", ["topic", "partition", "group"]
)
CONSUMER_BATCH_SECONDS = Histogram(
    "pulse_consumer_batch_duration_seconds", "Time to make one batch's effects durable.", ["group"]
)
CONSUMER_RETRIES = Counter(
    "pulse_consumer_retries_total", "Transient failures retried by a consumer.", ["group"]
)
CONSUMER_PAUSES = Counter(
    "pulse_consumer_partition_pauses_total", "Partitions paused after repeated transient failures.", ["group"]
)
OFFSET_COMMITS = Counter(
    "pulse_consumer_offset_commits_total", "Offset commits to Kafka by outcome.", ["group", "outcome"]
)
DEAD_LETTERED = Counter(
    "pulse_dead_lettered_total", "Messages sent to the dead-letter topic.", ["topic", "group"]
)
OUTBOX_PENDING = Gauge("pulse_outbox_pending", "Side effects waiting in an outbox.", ["outbox"])
EXTERNAL_CALLS = Counter(
    "pulse_external_calls_total", "Calls to external systems by outcome.", ["system", "operation", "outcome"]
)
EXTERNAL_LATENCY = Histogram(
    "pulse_external_call_duration_seconds", "Latency of calls to external systems.", ["system", "operation"]
)


_CHILDREN: dict[tuple[int, tuple[str, ...]], Any] = {}


def labelled(metric: MetricWrapperBase, *values: str) -> Any:
    """``metric.labels(*values)``, made once: ``labels()`` takes a lock and builds its key on every call,
    which per request or per produced event is measurable. For the hot paths only."""
    key = (id(metric), values)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*values)
    return child
