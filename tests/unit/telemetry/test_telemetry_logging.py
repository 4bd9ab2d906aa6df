"""JSON log lines: one object per line, with the trace and span ids of the active span."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import structlog
from credit_common.telemetry.logging import broker_logger, configure_logging, get_logger
from opentelemetry.sdk.trace import TracerProvider


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def _lines(out: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.splitlines() if line.strip()]


def test_line_carries_trace_and_span_ids_inside_a_span_only(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("designation", "INFO")
    tracer = TracerProvider().get_tracer("test")
    log = get_logger("credit.test")

    with tracer.start_as_current_span("handle") as span:
        log.info("inside", designation_id="d-1")
    log.info("outside")

    inside, outside = _lines(capsys.readouterr().out)
    context = span.get_span_context()
    assert inside["event"] == "inside"
    assert inside["designation_id"] == "d-1"
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert inside["level"] == "info"
    assert inside["logger"] == "credit.test"
    assert inside["service"] == "designation"
    assert inside["timestamp"].endswith("Z")
    assert "trace_id" not in outside
    assert "span_id" not in outside


def test_stdlib_loggers_share_the_json_format_and_calling_twice_adds_no_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("sharing", "INFO")
    configure_logging("sharing", "INFO")

    logging.getLogger("aiokafka.consumer").info("joined group %s", "sharing")
    logging.getLogger("uvicorn.access").info("GET / 200")  # below WARNING: dropped
    logging.getLogger("uvicorn.error").warning("slow")

    lines = _lines(capsys.readouterr().out)
    assert [(line["logger"], line["event"]) for line in lines] == [
        ("aiokafka.consumer", "joined group sharing"),
        ("uvicorn.error", "slow"),
    ]
    assert all(line["service"] == "sharing" for line in lines)


def test_debug_level_keeps_access_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("cases", "DEBUG")
    logging.getLogger("uvicorn.access").info("GET / 200")
    assert [line["event"] for line in _lines(capsys.readouterr().out)] == ["GET / 200"]


def test_exceptions_are_rendered_into_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning", "INFO")
    try:
        raise ValueError("bad value")
    except ValueError:
        get_logger("credit.test").exception("failed")
    (line,) = _lines(capsys.readouterr().out)
    assert line["level"] == "error"
    assert "ValueError: bad value" in line["exception"]


def test_broker_logger_lines_keep_faststream_context(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("objection", "INFO")
    broker_logger().info("Received", extra={"topic": "credit.objection.requests.v1", "message_id": "m-1"})
    (line,) = _lines(capsys.readouterr().out)
    assert line["event"] == "Received"
    assert line["topic"] == "credit.objection.requests.v1"
    assert line["message_id"] == "m-1"
    assert line["logger"] == "faststream.access.kafka"
