"""The dashboard's sampler: percentiles from histogram buckets (as PromQL's histogram_quantile
estimates them), rates from samples of the counters, windows of histograms."""

from __future__ import annotations

import math

import pytest
from credit_common.telemetry.metrics import MS_BUCKETS, ServiceMetrics
from credit_common.telemetry.sampler import (
    CONSUMED,
    PROCESSING,
    MetricsSampler,
    bucket_quantile,
    merge_buckets,
    quantiles,
    read_histograms,
    read_sample,
    subtract_buckets,
)
from prometheus_client import CollectorRegistry, Histogram

INF = math.inf
TOPIC = "credit.designation.requests.v1"


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.5, 0.1),  # rank 10 fills the first bucket exactly: its upper bound
        (0.25, 0.05),  # the first bucket starts at 0
        (0.75, 0.55),  # rank 15: half way through (0.1, 1.0]
        (0.99, 0.982),
        (1.0, 1.0),
    ],
)
def test_quantiles_interpolate_inside_the_bucket_that_holds_the_rank(q: float, expected: float) -> None:
    buckets = ((0.1, 10.0), (1.0, 20.0), (INF, 20.0))
    assert bucket_quantile(q, buckets) == pytest.approx(expected)


def test_a_rank_in_the_infinite_bucket_answers_the_highest_finite_bound() -> None:
    assert bucket_quantile(0.99, ((0.1, 0.0), (1.0, 10.0), (INF, 100.0))) == 1.0


def test_no_observations_no_quantile() -> None:
    assert bucket_quantile(0.5, ((0.1, 0.0), (INF, 0.0))) is None
    assert bucket_quantile(0.5, ()) is None
    assert quantiles(()) == [None, None, None]


def test_empty_buckets_before_the_rank_are_skipped() -> None:
    # Nothing at or below 1 ms: the median lies in (0.001, 0.0025], not at 0.
    buckets = ((0.0005, 0.0), (0.001, 0.0), (0.0025, 4.0), (INF, 4.0))
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.00175)


def test_estimates_from_a_real_histogram_land_in_the_right_bucket() -> None:
    registry = CollectorRegistry()
    hist = Histogram("credit_processing_seconds", "t", ["topic"], buckets=MS_BUCKETS, registry=registry)
    for i in range(1000):  # 1 ms .. 100 ms, uniformly
        hist.labels(topic=TOPIC).observe(0.001 + 0.099 * i / 999)
    buckets = read_histograms(registry, PROCESSING)[TOPIC]
    p50, p95, p99 = quantiles(buckets)
    assert p50 is not None
    assert p95 is not None
    assert p99 is not None
    assert 0.025 < p50 <= 0.1  # true median ~50.5 ms, in the (25 ms, 100 ms] buckets
    assert 0.05 < p95 <= 0.1
    assert 0.05 < p99 <= 0.1
    assert p50 < p95 < p99


def test_buckets_add_up_and_subtract() -> None:
    a = ((0.1, 1.0), (INF, 2.0))
    b = ((0.1, 3.0), (INF, 5.0))
    assert merge_buckets([a, b]) == ((0.1, 4.0), (INF, 7.0))
    assert subtract_buckets(b, a) == ((0.1, 2.0), (INF, 3.0))
    assert subtract_buckets(b, None) == b


def test_rates_come_from_the_difference_of_two_samples() -> None:
    registry = CollectorRegistry()
    metrics = ServiceMetrics("designation", registry)
    sampler = MetricsSampler(registry, interval_s=2.0)
    sampler.sample(now=1000.0, mono=0.0)
    metrics.messages_consumed.labels(topic=TOPIC, type="credit.designation.designate").inc(20)
    metrics.messages_consumed.labels(topic="credit.objection.events.v1", type="credit.objection.resolved").inc(10)
    sampler.sample(now=1010.0, mono=10.0)

    assert sampler.rate(CONSUMED, over_s=10.0) == pytest.approx(3.0)
    assert sampler.rate(CONSUMED, TOPIC, over_s=10.0) == pytest.approx(2.0)
    assert sampler.rate_series(CONSUMED) == [(1010.0, pytest.approx(3.0))]

    # A fresh reading, not stored, measured against the samples kept.
    metrics.messages_consumed.labels(topic=TOPIC, type="credit.designation.designate").inc(10)
    now = read_sample(registry, now=1015.0, mono=15.0)
    assert sampler.rate(CONSUMED, TOPIC, over_s=10.0, last=now) == pytest.approx(
        2.0
    )  # (30 - 20) / 5 s: from the oldest sample within 10 s


def test_one_sample_gives_no_rate() -> None:
    sampler = MetricsSampler(CollectorRegistry())
    sampler.sample(now=0.0, mono=0.0)
    assert sampler.rate(CONSUMED) is None
    assert sampler.rate_series(CONSUMED) == []


def test_the_window_counts_only_what_was_observed_inside_it() -> None:
    registry = CollectorRegistry()
    metrics = ServiceMetrics("sharing", registry)
    sampler = MetricsSampler(registry, interval_s=2.0, window_s=900.0)
    metrics.processing_seconds.labels(topic=TOPIC).observe(5.0)  # long ago
    sampler.sample(now=0.0, mono=0.0)
    sampler.sample(now=400.0, mono=400.0)
    for _ in range(4):
        metrics.processing_seconds.labels(topic=TOPIC).observe(0.002)
    sampler.sample(now=700.0, mono=700.0)

    window = sampler.window_histograms(PROCESSING, over_s=300.0)
    assert window[TOPIC][-1][1] == 4  # only the four recent observations
    assert bucket_quantile(0.99, window[TOPIC]) == pytest.approx(0.0025, abs=0.0005)


def test_the_ring_buffer_keeps_about_the_window() -> None:
    sampler = MetricsSampler(CollectorRegistry(), interval_s=2.0, window_s=60.0)
    for i in range(100):
        sampler.sample(now=float(i * 2), mono=float(i * 2))
    assert len(sampler.samples) == 31
    assert sampler.samples[0].mono == 138.0


def test_lag_gauges_are_read_per_partition() -> None:
    registry = CollectorRegistry()
    metrics = ServiceMetrics("warning", registry)
    metrics.consumer_lag.labels(topic=TOPIC, partition="3").set(42)
    assert read_sample(registry).lag == {(TOPIC, 3): 42.0}
