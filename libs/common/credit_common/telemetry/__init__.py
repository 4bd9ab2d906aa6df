"""Observability shared by every service: JSON logs with trace ids, OpenTelemetry tracing with
W3C propagation through Kafka headers, and the Prometheus metrics the dashboards read."""

from credit_common.telemetry.logging import broker_logger, configure_logging, get_logger
from credit_common.telemetry.metrics import ServiceMetrics, otel_histogram_views, render_latest
from credit_common.telemetry.tracing import (
    configure_tracing,
    dict_to_headers,
    extract_context,
    headers_to_dict,
    inject_headers,
    tracer,
)

__all__ = [
    "ServiceMetrics",
    "broker_logger",
    "configure_logging",
    "configure_tracing",
    "dict_to_headers",
    "extract_context",
    "get_logger",
    "headers_to_dict",
    "inject_headers",
    "otel_histogram_views",
    "render_latest",
    "tracer",
]
