"""OpenTelemetry tracing and W3C trace context carried in Kafka headers.

FastStream's `KafkaTelemetryMiddleware` propagates `traceparent` on the broker path; these helpers
cover the rest: an outbox row stores the headers of the transaction that wrote it, and the relay
publishes them so the consumer continues the same trace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

_TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
_provider: TracerProvider | None = None


def configure_tracing(service: str, otlp_endpoint: str | None = None, sample_ratio: float = 1.0) -> TracerProvider:
    """Install the process's `TracerProvider` (resource `service.name`); export over OTLP/HTTP
    when `otlp_endpoint` is set (the base URL, as in `OTEL_EXPORTER_OTLP_ENDPOINT`).

    Sampling is parent-based: a message whose traceparent says "sampled" is always recorded; a
    message that starts a trace is recorded with probability `sample_ratio` (a recorded span per
    message costs the consumer tens of microseconds; unsampled spans still carry fresh ids).
    OpenTelemetry allows one global provider per process, so a second call returns the first.
    """
    global _provider
    if _provider is not None:
        return _provider
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service}),
        sampler=ParentBased(root=TraceIdRatioBased(sample_ratio)),
    )
    if otlp_endpoint:
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=_traces_url(otlp_endpoint))))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def _traces_url(endpoint: str) -> str:
    # The exporter appends /v1/traces only to an endpoint it read from the environment itself.
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


def tracer(name: str) -> trace.Tracer:
    """A tracer from the global provider (a no-op one until `configure_tracing` ran)."""
    return trace.get_tracer(name)


def inject_headers(
    headers: Sequence[tuple[str, bytes]] | None = None, context: Context | None = None
) -> list[tuple[str, bytes]]:
    """Return Kafka headers with the `traceparent` (and `tracestate`) of `context`, by default the
    current one, replacing any trace headers already there; the input is not modified."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    injected = {key.lower() for key in carrier}
    kept = [(key, value) for key, value in headers or () if key.lower() not in injected | _TRACE_HEADERS]
    return kept + [(key, value.encode()) for key, value in carrier.items()]


def extract_context(headers: Sequence[tuple[str, bytes]] | None) -> Context:
    """The trace context carried in Kafka headers (an empty context when there is none), to pass
    as `context=` to `start_as_current_span` so processing continues the producer's trace."""
    return propagate.extract(headers_to_dict(headers))


def headers_to_dict(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Kafka headers as a JSON-storable dict (keys lower-cased; on repeats the last one wins)."""
    return {
        key.lower(): value.decode("utf-8", errors="replace") if value is not None else ""
        for key, value in headers or ()
    }


def dict_to_headers(values: Mapping[str, str] | None) -> list[tuple[str, bytes]]:
    """The inverse of `headers_to_dict`: Kafka headers from a stored dict."""
    return [(key, value.encode()) for key, value in (values or {}).items()]
