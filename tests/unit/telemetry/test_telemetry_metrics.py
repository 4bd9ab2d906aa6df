"""Prometheus families and the OpenTelemetry histogram views fit millisecond work."""

from __future__ import annotations

from credit_common.telemetry.metrics import MS_BUCKETS, ServiceMetrics, otel_histogram_views, render_latest
from opentelemetry.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from prometheus_client import CollectorRegistry


def _bucket_bounds(registry: CollectorRegistry, family: str) -> list[float]:
    return [
        float(sample.labels["le"])
        for metric in registry.collect()
        if metric.name == family
        for sample in metric.samples
        if sample.name == f"{family}_bucket" and sample.labels["le"] != "+Inf"
    ]


def test_histograms_have_millisecond_buckets() -> None:
    registry = CollectorRegistry()
    metrics = ServiceMetrics("designation", registry)
    metrics.processing_seconds.labels(topic="t").observe(0.0007)
    metrics.batch_seconds.labels(topic="t").observe(0.02)
    metrics.event_latency_seconds.labels(topic="t").observe(0.3)
    metrics.relay_publish_seconds.observe(0.004)
    metrics.http_request_seconds.labels(route="/", method="GET", status="200").observe(0.001)

    for family in (
        "credit_processing_seconds",
        "credit_batch_seconds",
        "credit_event_latency_seconds",
        "credit_relay_publish_seconds",
        "credit_http_request_seconds",
    ):
        assert _bucket_bounds(registry, family) == list(MS_BUCKETS), family
    assert MS_BUCKETS[0] == 0.0005
    assert registry.get_sample_value("credit_processing_seconds_bucket", {"topic": "t", "le": "0.001"}) == 1


def test_a_second_construction_on_the_same_registry_reuses_the_collectors() -> None:
    registry = CollectorRegistry()
    first, second = ServiceMetrics("cases", registry), ServiceMetrics("cases", registry)
    assert first.messages_consumed is second.messages_consumed
    second.messages_consumed.labels(topic="t", type="x").inc()
    assert registry.get_sample_value("credit_messages_consumed_total", {"topic": "t", "type": "x"}) == 1


def test_render_latest_is_prometheus_text() -> None:
    registry = CollectorRegistry()
    metrics = ServiceMetrics("sharing", registry)
    metrics.messages_published.labels(topic="credit.lists.changes.v1").inc(3)
    metrics.consumer_lag.labels(topic="t", partition="0").set(5)
    metrics.up.labels(dependency="kafka").set(1)

    body, content_type = render_latest(registry)
    text = body.decode()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert 'credit_messages_published_total{topic="credit.lists.changes.v1"} 3.0' in text
    assert 'credit_consumer_lag{partition="0",topic="t"} 5.0' in text
    assert 'credit_up{dependency="kafka"} 1.0' in text
    for family in ("credit_rejections_total", "credit_deadletters_total", "credit_inbox_duplicates_total"):
        assert f"# TYPE {family} counter" in text
    for family in ("credit_outbox_pending", "credit_reference_records"):
        assert f"# TYPE {family} gauge" in text


def test_otel_views_give_faststream_histograms_millisecond_buckets() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=otel_histogram_views())
    histogram: HistogramInstrument = provider.get_meter("faststream").create_histogram(
        "messaging.process.duration", unit="s"
    )
    histogram.record(0.003)

    data = reader.get_metrics_data()
    assert data is not None
    (point,) = [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    ]
    assert isinstance(point, HistogramDataPoint)
    assert list(point.explicit_bounds) == list(MS_BUCKETS)
    provider.shutdown()
