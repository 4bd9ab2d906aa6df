"""Prometheus metrics of a service (the `credit_*` families the dashboards and alerts read) and
the OpenTelemetry histogram views that give FastStream's telemetry useful buckets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from opentelemetry.sdk.metrics import Histogram as OtelHistogram
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

#: Histogram buckets in seconds that resolve sub-millisecond to ten-second work.
MS_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

_M = TypeVar("_M", Counter, Gauge, Histogram)
# Collectors already registered per registry: a second ServiceMetrics on the same registry (tests,
# the HTTP app and the consumer wiring the same process) reuses them instead of failing.
_created: WeakKeyDictionary[CollectorRegistry, dict[str, Any]] = WeakKeyDictionary()


def _metric(
    registry: CollectorRegistry, kind: type[_M], name: str, doc: str, labels: Sequence[str] = (), **kw: Any
) -> _M:
    existing = _created.setdefault(registry, {})
    if name not in existing:
        existing[name] = kind(name, doc, labelnames=tuple(labels), registry=registry, **kw)
    metric = existing[name]
    if not isinstance(metric, kind):
        raise TypeError(f"metric {name} already registered as {type(metric).__name__}")
    return metric


def up_gauge(registry: CollectorRegistry) -> Gauge:
    """`credit_up{dependency}`: 1 when the last readiness check of the dependency passed, else 0."""
    return _metric(registry, Gauge, "credit_up", "Dependency reachable at the last check (1/0).", ["dependency"])


def http_request_seconds(registry: CollectorRegistry) -> Histogram:
    """`credit_http_request_seconds{route,method,status}`, by route template."""
    return _metric(
        registry,
        Histogram,
        "credit_http_request_seconds",
        "HTTP request handling time.",
        ["route", "method", "status"],
        buckets=MS_BUCKETS,
    )


class ServiceMetrics:
    """The `credit_*` metrics of one service on one registry (the default process registry unless
    given). Constructing it twice on the same registry yields the same collectors."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry if registry is not None else REGISTRY
        r = self.registry

        def hist(name: str, doc: str, labels: Sequence[str] = ()) -> Histogram:
            return _metric(r, Histogram, name, doc, labels, buckets=MS_BUCKETS)

        self.messages_consumed = _metric(
            r, Counter, "credit_messages_consumed_total", "Messages consumed.", ["topic", "type"]
        )
        self.messages_published = _metric(
            r, Counter, "credit_messages_published_total", "Messages published.", ["topic"]
        )
        self.rejections = _metric(r, Counter, "credit_rejections_total", "Requests rejected, by error code.", ["code"])
        self.deadletters = _metric(
            r,
            Counter,
            "credit_deadletters_total",
            "Unparseable messages sent to the dead-letter topic.",
            ["topic"],
        )
        self.parked = _metric(
            r,
            Counter,
            "credit_messages_parked_total",
            "Messages left on their topic because even their dead letter could not be written.",
            ["topic"],
        )
        self.inbox_duplicates = _metric(
            r, Counter, "credit_inbox_duplicates_total", "Redelivered events the inbox skipped.", ["topic"]
        )
        self.batches = _metric(
            r,
            Counter,
            "credit_consumer_batches_total",
            "Batches applied, by path: optimistic (two statements), locking (a transaction), and"
            " contended (optimistic attempts that met a concurrent change and were applied locking).",
            ["topic", "path"],
        )
        self.processing_seconds = hist("credit_processing_seconds", "Handling time per message.", ["topic"])
        self.batch_seconds = hist("credit_batch_seconds", "Handling time per batch transaction.", ["topic"])
        self.gc_pause_seconds = hist(
            "credit_gc_pause_seconds", "Pauses of the cyclic garbage collector, by generation.", ["generation"]
        )
        self.event_latency_seconds = hist(
            "credit_event_latency_seconds", "From an event's time to its processing.", ["topic"]
        )
        self.relay_publish_seconds = hist("credit_relay_publish_seconds", "Outbox relay time per published batch.")
        self.consumer_lag = _metric(
            r, Gauge, "credit_consumer_lag", "Records behind the partition's end.", ["topic", "partition"]
        )
        self.outbox_pending = _metric(r, Gauge, "credit_outbox_pending", "Outbox rows not yet published.")
        self.outbox_parked = _metric(
            r,
            Counter,
            "credit_outbox_parked_total",
            "Outbox rows moved to outbox_parked: too large for the broker.",
            ["topic"],
        )
        self.relay_leader = _metric(
            r, Gauge, "credit_relay_leader", "1 when this instance's outbox relay leads (one per service relays)."
        )
        self.reference_records = _metric(r, Gauge, "credit_reference_records", "Records in the reference cache.")
        self.up = up_gauge(r)
        self.http_request_seconds = http_request_seconds(r)


def render_latest(registry: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """The registry in Prometheus text format 0.0.4, with its content type."""
    return generate_latest(registry if registry is not None else REGISTRY), CONTENT_TYPE_PLAIN_0_0_4


def otel_histogram_views(buckets: Sequence[float] = MS_BUCKETS) -> list[View]:
    """Views giving every OpenTelemetry histogram (FastStream's `messaging.process.duration`,
    `messaging.publish.duration`, in seconds) explicit millisecond-fitting buckets; pass them as
    `MeterProvider(views=...)`. The SDK default (0, 5, 10, … 10000) suits milliseconds, not seconds."""
    return [View(instrument_type=OtelHistogram, aggregation=ExplicitBucketHistogramAggregation(list(buckets)))]
