"""W3C trace context through Kafka-style headers and through an outbox row's JSON."""

from __future__ import annotations

import orjson
from credit_common.telemetry.tracing import (
    configure_tracing,
    dict_to_headers,
    extract_context,
    headers_to_dict,
    inject_headers,
)
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

_tracer = TracerProvider().get_tracer("test")


def test_traceparent_round_trips_and_the_consumer_continues_the_trace() -> None:
    original = [("content-type", b"application/cloudevents+json")]
    with _tracer.start_as_current_span("publish") as producer:
        headers = inject_headers(original)
    producer_context = producer.get_span_context()

    assert original == [("content-type", b"application/cloudevents+json")]
    assert headers[0] == original[0]
    carried = dict(headers)
    version, trace_id, parent_id, flags = carried["traceparent"].decode().split("-")
    assert (version, trace_id, parent_id) == (
        "00",
        f"{producer_context.trace_id:032x}",
        f"{producer_context.span_id:016x}",
    )
    assert int(flags, 16) & 0x01  # sampled

    with _tracer.start_as_current_span("process", context=extract_context(headers)) as consumer:
        pass
    assert consumer.get_span_context().trace_id == producer_context.trace_id
    assert isinstance(consumer, ReadableSpan)
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer_context.span_id


def test_inject_replaces_a_stale_traceparent() -> None:
    stale = [("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")]
    with _tracer.start_as_current_span("publish") as span:
        headers = inject_headers(stale)
    assert [key for key, _ in headers].count("traceparent") == 1
    assert dict(headers)["traceparent"].decode().split("-")[1] == f"{span.get_span_context().trace_id:032x}"


def test_no_span_no_trace_headers_and_an_empty_context() -> None:
    assert inject_headers() == []
    assert not trace.get_current_span(extract_context(None)).get_span_context().is_valid
    assert not trace.get_current_span(extract_context([("key", b"v")])).get_span_context().is_valid


def test_headers_survive_an_outbox_row_as_json() -> None:
    with _tracer.start_as_current_span("write") as span:
        stored = orjson.dumps(headers_to_dict(inject_headers()))
    restored = dict_to_headers(orjson.loads(stored))
    context = trace.get_current_span(extract_context(restored)).get_span_context()
    assert context.trace_id == span.get_span_context().trace_id
    assert headers_to_dict(None) == {}
    assert dict_to_headers(None) == []


def test_configure_tracing_is_idempotent() -> None:
    # The provider is process-global: whichever test configured it first named it.
    first = configure_tracing("designation", None)
    name = first.resource.attributes["service.name"]
    assert configure_tracing("another", None) is first
    assert first.resource.attributes["service.name"] == name
