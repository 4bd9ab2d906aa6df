"""The unit of work of one batch: what a handler gets besides its message. It holds the open
connection (or, on the optimistic path, the snapshot the service's read plan returned), the outbox
buffer of what the batch emits, the answers to requests, and the callbacks that run only once the
batch's writes have committed. Nothing in it is sent anywhere until the batch commits."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract
from pydantic import BaseModel

from credit_common.clock import Clock
from credit_common.contracts.envelope import CloudEvent, new_event, new_id
from credit_common.contracts.registry import REGISTRY, type_of
from credit_common.db.outbox import OutboxMessage
from credit_common.outcomes import derived_id, request_key

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("credit_common.consumer")


@dataclass(slots=True)
class Incoming:
    """One parsed message as a handler sees it."""

    event: CloudEvent
    data: Any  # the validated data model of `event.type`, or the raw data for unmodelled types
    unit: str | None  # the trusted sending unit (see `parsing.trusted_unit`)
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: Sequence[tuple[str, bytes]]
    # A signed request: the platform's time of receipt and the bytes its signature covers (the
    # canonical envelope without `signature`: what an audit of the decision keeps). None for events.
    received_at: datetime | None = None
    signed: bytes | None = None

    @property
    def cause_key(self) -> str:
        """What this message is known by, and what the ids it causes derive from: a request's
        (source, id), since two units may use one id; a platform event's id (each events topic
        has one writer, so its id alone is (source, id))."""
        return request_key(self.event.source, self.event.id) if self.received_at is not None else self.event.id

    @property
    def at(self) -> datetime:
        """When the platform takes this message to have happened: for a request, its receipt by
        the platform clock (the sender's `time` is only its claim, kept as signed); for a platform
        event, its `time`, which the platform itself set (contracts.md, Integrity rules)."""
        return self.received_at if self.received_at is not None else self.event.time


@dataclass(slots=True)
class Answer:
    """One request's answer, as the feedback topic gets it (for a service's own request ledger)."""

    request_id: str
    request_type: str
    unit: str
    accepted: bool
    result_id: str | None
    errors: list[dict[str, Any]] | None
    time: datetime


@dataclass
class Context:
    """The unit of work of one batch: the open transaction and the outbox buffer."""

    conn: asyncpg.Connection
    clock: Clock
    service: str
    outbox: list[OutboxMessage] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    current: Incoming | None = None
    # What a batch handler leaves for its consumer's `flush` hook to write (the service's own type).
    pending: object | None = None
    # The optimistic path only (see `apply`): the row the service's read plan returned (without the
    # inbox column), and the inbox rows its flush must write ((keys, topics, digests)). Both None on the
    # locking path, where the batch handler reads under lock and the inbox rows are written already.
    # (A database row: its values are as untyped as asyncpg gives them; the service's read plan
    # names what each column is.)
    snapshot: tuple[Any, ...] | None = None
    inbox: tuple[list[str], list[str], list[bytes | None]] | None = None
    # Accepted signed requests, as they were signed (the `accepted_requests` audit rows).
    accepted: list[tuple[Any, ...]] = field(default_factory=list)
    _emitted: dict[str, int] = field(default_factory=dict)
    _committed: list[Callable[[], None]] = field(default_factory=list)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this batch's writes have committed, and not at all when they roll
        back: a batch applied again (a contended optimistic write, an outage, a failing message
        isolated) must not count its rejections and dead letters twice."""
        self._committed.append(callback)

    def committed(self) -> None:
        """Called by the consumer after the commit: runs the `after_commit` callbacks."""
        callbacks, self._committed = self._committed, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a metric must never undo a committed batch
                log.exception("after-commit callback failed")

    def emit(self, topic: str, key: str | None, event: CloudEvent) -> None:
        """Publish `event` on `topic` once this batch commits (through the outbox)."""
        self.outbox.append(OutboxMessage.of_event(topic, key, event))

    def next_id(self, type: str) -> str:
        """The id of the next event this handler emits: derived from what the causing message is
        known by (`Incoming.cause_key`), so a rebuild by replay emits the very same ids (downstream
        inboxes then drop them) and two units' requests under one id never emit one id."""
        cur = self.current
        if cur is None:
            return new_id()
        k = self._emitted.get(type, 0)
        self._emitted[type] = k + 1
        return derived_id(cur.cause_key, self.service, type, k)

    def event(self, type: str, data: Any, *, subject: str | None = None, time: datetime | None = None) -> CloudEvent:
        """A new platform event caused by the message being handled (correlation and causation set,
        time taken from the causing event so replays rebuild identical state)."""
        cur = self.current
        return new_event(
            type,
            f"platform/{self.service}",
            data,
            id=self.next_id(type),
            time=time or (cur.at if cur else self.clock.now()),
            subject=subject,
            correlationid=(cur.event.correlationid or cur.event.id) if cur else None,
            causationid=cur.event.id if cur else None,
        )

    def publish(
        self,
        topic: str,
        key: str | None,
        type: str,
        data: Any,
        *,
        subject: str | None = None,
        time: datetime | None = None,
        id: str | None = None,
    ) -> str:
        """`emit(topic, key, event(type, data, ...))` without building a CloudEvent model: the
        hot path for set-oriented handlers. Returns the event id."""
        cur = self.current
        if isinstance(data, BaseModel):
            data = data.model_dump(mode="json", exclude_none=True)
        event_id = id or self.next_id(type)
        doc: dict[str, Any] = {
            "specversion": "1.0",
            "id": event_id,
            "source": f"platform/{self.service}",
            "type": type,
            "time": time or (cur.at if cur else self.clock.now()),
            "datacontenttype": "application/json",
        }
        if subject is not None:
            doc["subject"] = subject
        if cur is not None:
            doc["correlationid"] = cur.event.correlationid or cur.event.id
            doc["causationid"] = cur.event.id
        doc["data"] = data
        self.outbox.append(OutboxMessage.of_document(topic, key, doc))
        return event_id

    def publish_event(
        self,
        data: BaseModel,
        *,
        key: str | None,
        subject: str | None = None,
        type_: str | None = None,
        topic: str | None = None,
        time: datetime | None = None,
        id: str | None = None,
    ) -> str:
        """Publish a contract event built from its model (validated when it was built): its type
        and topic come from the registry (`type_` names one where a model serves several, as list
        changes do; `topic` another of its topics). Returns the event id."""
        name = type_ or type_of(type(data))
        row = REGISTRY[name]
        if not isinstance(data, row.model):
            raise TypeError(f"{name} carries {row.model.__name__}, not {type(data).__name__}")
        if topic is not None and topic not in row.topics:
            raise ValueError(f"{name} is not published on {topic}")
        return self.publish(topic or row.topic, key, name, data, subject=subject, time=time, id=id)

    def begin(self, incoming: Incoming | None) -> None:
        self.current = incoming
        self._emitted.clear()

    @contextlib.contextmanager
    def handling(self, incoming: Incoming) -> Iterator[None]:
        """Handle one message: causation and derived ids for what it emits, and, when the message
        carries a W3C traceparent, its own span continuing that trace. (A span per message costs
        tens of microseconds; messages that bring no trace are covered by the batch's span.)"""
        self.begin(incoming)
        try:
            carrier = header_dict(incoming.headers) if incoming.headers else {}
            if "traceparent" not in carrier:
                yield
                return
            token = otel_context.attach(extract(carrier))
            try:
                with _tracer.start_as_current_span(
                    f"process {incoming.event.type}",
                    kind=trace.SpanKind.CONSUMER,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.destination.name": incoming.topic,
                        "messaging.kafka.destination.partition": incoming.partition,
                        "messaging.kafka.message.offset": incoming.offset,
                        "messaging.message.id": incoming.event.id,
                    },
                ):
                    yield
            finally:
                otel_context.detach(token)
        finally:
            self.begin(None)


def header_dict(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    """Kafka headers as text; hostile header bytes are ignored, never fatal."""
    out: dict[str, str] = {}
    for k, v in headers or ():
        with contextlib.suppress(Exception):
            out[k] = v.decode("utf-8")
    return out
