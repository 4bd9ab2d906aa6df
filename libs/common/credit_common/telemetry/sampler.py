"""What the operator dashboard draws over time: a small in-process sampler that reads the service's
own Prometheus registry every few seconds into a ring buffer (about fifteen minutes), so the page
can show messages in and out per second with their recent history, and latency percentiles over
the last minutes, without a Prometheus server.

Percentiles are estimated from histogram buckets the way PromQL's `histogram_quantile` does:
linear interpolation inside the bucket that holds the rank."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

#: Cumulative histogram buckets: (upper bound, observations at or below it), ascending, +Inf last.
Buckets = tuple[tuple[float, float], ...]

CONSUMED = "credit_messages_consumed"
PUBLISHED = "credit_messages_published"
REJECTIONS = "credit_rejections"
DEADLETTERS = "credit_deadletters"
BATCHES = "credit_consumer_batches"
LAG = "credit_consumer_lag"
PROCESSING = "credit_processing_seconds"
EVENT_LATENCY = "credit_event_latency_seconds"
LATENCY_FAMILIES = (PROCESSING, EVENT_LATENCY)
# Counter families keyed by the label that the dashboard shows them by.
_COUNTERS = {CONSUMED: "topic", PUBLISHED: "topic", REJECTIONS: "code", DEADLETTERS: "topic", BATCHES: "path"}


@dataclass(frozen=True, slots=True)
class Sample:
    """The registry's counters, lag gauges and latency histograms at one moment."""

    at: float  # wall clock (epoch seconds), for display
    mono: float  # monotonic seconds, for rates
    counters: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # family -> label value -> total
    lag: Mapping[tuple[str, int], float] = field(default_factory=dict)  # (topic, partition) -> records behind
    histograms: Mapping[str, Mapping[str, Buckets]] = field(default_factory=dict)  # family -> topic -> buckets

    def total(self, family: str) -> float:
        return sum(self.counters.get(family, {}).values())


def bucket_quantile(q: float, buckets: Buckets) -> float | None:
    """The q-quantile (0..1) of cumulative `buckets`, or None with no observations. Like PromQL:
    the first bucket starts at 0, and a rank in the +Inf bucket answers the highest finite bound."""
    if not buckets or not 0.0 <= q <= 1.0:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank and count > below:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / (count - below)
        if not math.isinf(upper):
            lower = upper
        below = count
    return lower


def merge_buckets(many: Iterable[Buckets]) -> Buckets:
    """The sum of histograms that share their bounds (e.g. one per topic)."""
    acc: dict[float, float] = {}
    for buckets in many:
        for upper, count in buckets:
            acc[upper] = acc.get(upper, 0.0) + count
    return tuple(sorted(acc.items()))


def subtract_buckets(new: Buckets, old: Buckets | None) -> Buckets:
    """Observations made between two readings of one histogram (the old one may not exist yet)."""
    if not old:
        return new
    before = dict(old)
    return tuple((upper, max(0.0, count - before.get(upper, 0.0))) for upper, count in new)


def read_histograms(registry: CollectorRegistry, family: str, by: str | None = "topic") -> dict[str, Buckets]:
    """The cumulative buckets of histogram `family`, per value of label `by` ("" for no label)."""
    found: dict[str, dict[float, float]] = {}
    for metric in registry.collect():
        if metric.name != family or metric.type != "histogram":
            continue
        for s in metric.samples:
            if s.name == family + "_bucket":
                key = s.labels.get(by, "") if by else ""
                upper = float(s.labels["le"])
                per = found.setdefault(key, {})
                per[upper] = per.get(upper, 0.0) + s.value
    return {key: tuple(sorted(per.items())) for key, per in found.items()}


def read_sample(registry: CollectorRegistry, now: float | None = None, mono: float | None = None) -> Sample:
    """One reading of the `credit_*` families the dashboard needs."""
    counters: dict[str, dict[str, float]] = {name: {} for name in _COUNTERS}
    lag: dict[tuple[str, int], float] = {}
    histograms: dict[str, dict[str, dict[float, float]]] = {name: {} for name in LATENCY_FAMILIES}
    for metric in registry.collect():
        if metric.name in _COUNTERS:
            label = _COUNTERS[metric.name]
            per = counters[metric.name]
            for s in metric.samples:
                if s.name.endswith("_total"):
                    key = s.labels.get(label, "")
                    per[key] = per.get(key, 0.0) + s.value
        elif metric.name == LAG:
            for s in metric.samples:
                with contextlib.suppress(KeyError, ValueError):
                    lag[(s.labels["topic"], int(s.labels["partition"]))] = s.value
        elif metric.name in histograms:
            hist = histograms[metric.name]
            for s in metric.samples:
                if s.name == metric.name + "_bucket":
                    per_topic = hist.setdefault(s.labels.get("topic", ""), {})
                    upper = float(s.labels["le"])
                    per_topic[upper] = per_topic.get(upper, 0.0) + s.value
    return Sample(
        at=time.time() if now is None else now,
        mono=time.monotonic() if mono is None else mono,
        counters=counters,
        lag=lag,
        histograms={
            family: {topic: tuple(sorted(b.items())) for topic, b in per.items()} for family, per in histograms.items()
        },
    )


class MetricsSampler:
    """Samples `registry` every `interval_s` into a ring buffer of `window_s` seconds; rates and
    windowed percentiles come from differences between its samples."""

    def __init__(self, registry: CollectorRegistry, interval_s: float = 2.0, window_s: float = 900.0) -> None:
        self.registry = registry
        self.interval_s = interval_s
        self.window_s = window_s
        self.samples: deque[Sample] = deque(maxlen=max(2, math.ceil(window_s / interval_s) + 1))
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    def sample(self, now: float | None = None, mono: float | None = None) -> Sample:
        """Take one sample now (the loop calls this; tests call it with their own times)."""
        s = read_sample(self.registry, now, mono)
        self.samples.append(s)
        return s

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dashboard-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:  # a broken collector must not end the sampling
                log.exception("dashboard sampler: reading the registry failed")
            await asyncio.sleep(self.interval_s)

    # ------------------------------------------------------------------ reading

    @property
    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def _back(self, over_s: float, last: Sample | None = None) -> tuple[Sample, Sample] | None:
        """`last` (default: the latest sample) and the oldest stored sample at most about `over_s`
        before it; None when there is no such earlier sample."""
        if last is None:
            if len(self.samples) < 2:
                return None
            last = self.samples[-1]
        first: Sample | None = None
        for s in reversed(self.samples):
            if s.mono >= last.mono:
                continue
            if last.mono - s.mono > over_s + self.interval_s / 2:
                break
            first = s
        return None if first is None else (last, first)

    def rate(
        self, family: str, key: str | None = None, over_s: float = 10.0, last: Sample | None = None
    ) -> float | None:
        """Per second over about the last `over_s` seconds up to `last` (default: the latest
        sample): of the whole counter family, or of one label value."""
        pair = self._back(over_s, last)
        if pair is None:
            return None
        end, first = pair
        elapsed = end.mono - first.mono
        if key is None:
            delta = end.total(family) - first.total(family)
        else:
            delta = end.counters.get(family, {}).get(key, 0.0) - first.counters.get(family, {}).get(key, 0.0)
        return max(0.0, delta) / elapsed

    def rate_series(self, family: str) -> list[tuple[float, float]]:
        """(wall time, per second since the previous sample) for every sample in the window."""
        out: list[tuple[float, float]] = []
        samples = list(self.samples)
        for prev, cur in itertools.pairwise(samples):
            elapsed = cur.mono - prev.mono
            if elapsed > 0:
                out.append((cur.at, max(0.0, cur.total(family) - prev.total(family)) / elapsed))
        return out

    def value_series(self, value: Callable[[Sample], float]) -> list[tuple[float, float]]:
        """(wall time, value(sample)) for every sample in the window (e.g. the total lag)."""
        return [(s.at, value(s)) for s in self.samples]

    def window_histograms(self, family: str, over_s: float = 300.0, last: Sample | None = None) -> dict[str, Buckets]:
        """Per topic, the observations of histogram `family` over about the last `over_s` seconds
        up to `last` (default: the latest sample); with no earlier sample, all of them so far."""
        pair = self._back(over_s, last)
        if pair is None:
            end = last or self.latest
            return dict(end.histograms.get(family, {})) if end else {}
        end, first = pair
        old = first.histograms.get(family, {})
        return {topic: subtract_buckets(b, old.get(topic)) for topic, b in end.histograms.get(family, {}).items()}


def quantiles(buckets: Buckets, qs: Sequence[float] = (0.5, 0.95, 0.99)) -> list[float | None]:
    """Each of `qs` estimated from `buckets` (None where there are no observations)."""
    return [bucket_quantile(q, buckets) for q in qs]
