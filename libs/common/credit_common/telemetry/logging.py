"""Structured logging: one JSON object per line on stdout, for structlog and stdlib loggers alike,
carrying the active OpenTelemetry trace and span ids so a log line leads to its trace."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

# Third-party loggers that install their own handlers or formats: routed through ours instead.
_FOREIGN_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "faststream",
    "faststream.access.kafka",
    "aiokafka",
)

_service = "unknown"
_handler: logging.Handler | None = None


def add_service(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Name the emitting service on every line (set by `configure_logging`)."""
    event_dict.setdefault("service", _service)
    return event_dict


def add_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Add the current span's `trace_id` and `span_id` (hex), when a span is recording."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


def _drop_color_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # uvicorn duplicates each message with ANSI colours in `extra`.
    event_dict.pop("color_message", None)
    return event_dict


def _orjson_dumps(value: Any, **_: Any) -> str:
    # default=str: a stray UUID, Decimal or exception object must not lose the line.
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


# Run on structlog events and, via the formatter's foreign_pre_chain, on stdlib records.
_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    add_service,
    add_trace_ids,
]


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log line (structlog and stdlib: aiokafka, uvicorn, faststream) to stdout as JSON.

    Safe to call again: the handler it installed before is replaced, not duplicated. Call it in the
    composition root before the first log line; run uvicorn with `log_config=None` so it keeps ours.
    """
    global _handler, _service
    _service = service
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a module-level logger used before this call must still pick up our config.
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder(), _drop_color_message],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_orjson_dumps),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    _handler = handler

    for name in _FOREIGN_LOGGERS:
        foreign = logging.getLogger(name)
        foreign.handlers.clear()
        foreign.propagate = True
        foreign.setLevel(logging.NOTSET)
    # One access line per request drowns everything else; keep them for debugging sessions.
    logging.getLogger("uvicorn.access").setLevel(logging.DEBUG if numeric_level <= logging.DEBUG else logging.WARNING)


def get_logger(name: str | None = None, **initial: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger named `name` (usually `__name__`), optionally with bound values."""
    return structlog.stdlib.get_logger(name, **initial)


def broker_logger() -> logging.Logger:
    """The logger to hand FastStream (`KafkaBroker(logger=broker_logger())`). Left to itself,
    FastStream builds one with its own handler and text format that bypasses ours; this one
    propagates to the JSON handler and keeps FastStream's `topic`, `group_id`, `message_id`."""
    return logging.getLogger("faststream.access.kafka")
