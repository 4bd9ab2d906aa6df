"""Garbage-collector pauses reach `credit_gc_pause_seconds`, by generation, while the runtime
runs, and stop being timed when it stops (the callback is removed)."""

from __future__ import annotations

import gc

from credit_common.telemetry.metrics import ServiceMetrics
from credit_common.telemetry.observe import time_garbage_collector
from prometheus_client import CollectorRegistry


def pauses(registry: CollectorRegistry, generation: int) -> float:
    value = registry.get_sample_value("credit_gc_pause_seconds_count", {"generation": str(generation)})
    return value or 0.0


def test_each_collection_is_timed_by_generation() -> None:
    registry = CollectorRegistry()
    callback = time_garbage_collector(ServiceMetrics("toy", registry))
    try:
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
        assert pauses(registry, 0) >= 1
        assert pauses(registry, 2) >= 2
        total = registry.get_sample_value("credit_gc_pause_seconds_sum", {"generation": "2"})
        assert total is not None
        assert total > 0
    finally:
        gc.callbacks.remove(callback)
    before = pauses(registry, 2)
    gc.collect(2)
    assert pauses(registry, 2) == before
