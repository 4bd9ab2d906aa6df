"""The one consumer wrapper every service uses.

For each batch fetched from Kafka it parses every envelope, drops what the inbox has already seen,
runs the handlers, and writes their state changes, the inbox rows and the outbox rows (events,
feedback, dead letters) in ONE database transaction; only after that commits does it commit the
Kafka offsets. A crash anywhere before the database commit redelivers the batch, and the inbox
makes the redelivery change nothing; a crash after it loses nothing, because the outbox holds
every effect that still has to reach Kafka.

- A value that is not a parseable CloudEvent goes to `credit.deadletter.v1` with its raw bytes
  (and, where a unit can be read from it, a `schema_violation` rejection to that unit).
- A parsed request that breaks a rule is answered `credit.request.rejected` with error codes; an
  accepted one `credit.request.accepted`: exactly one answer per request id.
- A handler that fails unexpectedly rolls back the batch; the batch is then retried one message
  at a time, so only the message that really fails is dead-lettered and the consumer goes on.
- Database or broker outages are retried with backoff, never dead-lettered: nothing is skipped.

A service may give its consumer an optimistic path (`optimistic`): the batch's reads in one
statement outside a transaction (with the inbox check), and every write, the inbox rows included,
in ONE statement that re-reads what the rules read, locked, and fails if any of it changed. That
is two round trips where the locking transaction takes five (BEGIN, inbox, read, write, COMMIT).
A statement is a transaction of its own, so the batch is still all or nothing; when it fails on a
concurrent change or on an inbox key another consumer recorded meanwhile, the batch is applied
again by the locking path, which is what a redelivery, a repeated key or any batch the service
does not plan for takes as well.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import uuid_utils
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract
from pydantic import BaseModel, ValidationError

from credit_common.clock import Clock
from credit_common.contracts.envelope import CloudEvent, new_event, new_id
from credit_common.db.outbox import OutboxMessage, write_outbox
from credit_common.messaging import topics
from credit_common.tasks import finish_or_cancel

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("credit_common.consumer")

# Records the ids a batch has not seen before; returns them (what it returns is new work).
INBOX_SQL = (
    "WITH ins AS (INSERT INTO inbox (event_id, topic)"
    " SELECT k, t FROM unnest($1::text[], $2::text[]) AS u(k, t)"
    " ON CONFLICT DO NOTHING RETURNING event_id)"
    " SELECT coalesce(array_agg(event_id), '{}') FROM ins"
)
# The optimistic path's read: has the inbox seen any of the batch ($1), and the service's own reads
# (one row; its parameters from $2 on).
SEEN_AND_READ_SQL = "SELECT EXISTS (SELECT 1 FROM inbox WHERE event_id = ANY($1::text[])) AS seen, r.* FROM ({}) AS r"
# What makes the optimistic path give way to the locking one: a row the rules read changed since
# (the service's write raises serialization_failure) or an inbox key came in meanwhile.
CONTENDED = (asyncpg.SerializationError, asyncpg.UniqueViolationError)

# Errors that mean "the world is away", not "this message is bad": retry, never dead-letter.
TRANSIENT = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    TimeoutError,
)


@dataclass(slots=True)
class ErrorItem:
    code: str
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field, "message": self.message}


class Rejected(Exception):
    """Raised by a request handler, before it writes anything, when a rule is broken."""

    def __init__(self, errors: Sequence[ErrorItem] | ErrorItem) -> None:
        self.errors = [errors] if isinstance(errors, ErrorItem) else list(errors)
        super().__init__("; ".join(f"{e.code}: {e.message}" for e in self.errors))


def reject(code: str, message: str, field: str | None = None) -> Rejected:
    """Shorthand: `raise reject("unknown_unit", "no unit 110000-XYZ", "source")`."""
    return Rejected(ErrorItem(code, field, message))


@dataclass(slots=True)
class Accepted:
    result_id: str


@dataclass(slots=True)
class Incoming:
    """One parsed message as a handler sees it."""

    event: CloudEvent
    data: Any  # the validated data model of `event.type`, or the raw data for unmodelled types
    unit: str | None  # the trusted sending unit (see `trusted_unit`)
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass
class Context:
    """What a handler gets besides its message: the open transaction and the outbox buffer."""

    conn: asyncpg.Connection
    clock: Clock
    service: str
    outbox: list[OutboxMessage] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    current: Incoming | None = None
    pending: Any = None  # what a batch handler leaves for its consumer's `flush` hook to write
    # The optimistic path only (see `KafkaConsumerWrapper`): the row the service's read plan
    # returned (without the inbox column), and the inbox rows its flush must write ((keys, topics)).
    # Both None on the locking path, where the batch handler reads under lock and the wrapper has
    # written the inbox rows already.
    snapshot: Any = None
    inbox: tuple[list[str], list[str]] | None = None
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
        """The id of the next event this handler emits: derived from the causing event's id, so a
        rebuild by replay emits the very same ids (downstream inboxes then drop them)."""
        cur = self.current
        if cur is None:
            return new_id()
        k = self._emitted.get(type, 0)
        self._emitted[type] = k + 1
        return derived_id(cur.event.id, self.service, type, k)

    def event(self, type: str, data: Any, *, subject: str | None = None, time: datetime | None = None) -> CloudEvent:
        """A new platform event caused by the message being handled (correlation and causation set,
        time taken from the causing event so replays rebuild identical state)."""
        cur = self.current
        return new_event(
            type,
            f"platform/{self.service}",
            data,
            id=self.next_id(type),
            time=time or (cur.event.time if cur else self.clock.now()),
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
            "time": time or (cur.event.time if cur else self.clock.now()),
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
            carrier = _header_dict(incoming.headers) if incoming.headers else {}
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


_ID_NAMESPACE = uuid_utils.UUID("6f1c2e0a-7b3d-5e4f-9a8b-1c2d3e4f5a6b")


def derived_id(cause: str, service: str, type: str, k: int = 0) -> str:
    """A stable event id for the k-th `type` event `service` emits because of event `cause`."""
    return str(uuid_utils.uuid5(_ID_NAMESPACE, f"{cause}|{service}|{type}|{k}"))


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


Handler = Callable[[Incoming, Context], Awaitable[Accepted | None]]
AnswersHook = Callable[[asyncpg.Connection, list[Answer]], Awaitable[None]]
FlushHook = Callable[[asyncpg.Connection, Context], Awaitable[None]]
BatchHandler = Callable[[Sequence[Incoming], Context], Awaitable[Sequence[Accepted | Rejected | None]]]
ModelLookup = Callable[[str], type[BaseModel] | None]
# A service's optimistic read of a batch: a query returning one row (parameters numbered from $2)
# and its arguments; None sends the batch down the locking path.
ReadPlan = tuple[str, Sequence[Any]]
Optimistic = Callable[[Sequence[Incoming]], ReadPlan | None]


class ConsumerObserver:
    """Hooks for metrics; the default does nothing."""

    def consumed(self, topic: str, type: str, n: int = 1) -> None: ...
    def duplicate(self, topic: str, n: int) -> None: ...
    def rejected(self, code: str) -> None: ...
    def deadlettered(self, topic: str) -> None: ...
    def batch_done(self, topic: str, seconds: float, n: int) -> None: ...
    def event_latency(self, topic: str, seconds: float) -> None: ...
    def path(self, topic: str, path: str) -> None: ...
    def lag(self, topic: str, partition: int, lag: int) -> None: ...


def trusted_unit(event: CloudEvent, record: ConsumerRecord | None = None) -> str | None:
    """THE place where a request's source is trusted (design.md section 6): today the envelope's
    `source` (`unit/<code>`) is taken at its word; SASL principals and signatures land here."""
    return event.source_unit


@dataclass(slots=True)
class _Parsed:
    record: ConsumerRecord
    inbox_key: str
    incoming: Incoming | None = None
    dead_reason: str | None = None
    reject_errors: list[ErrorItem] | None = None
    reject_to: str | None = None
    request_id: str | None = None
    request_type: str | None = None


class KafkaConsumerWrapper:
    """Consumes `topics` in consumer group `group_id` and applies messages exactly once.

    `handlers` routes message type to a per-message handler; types with no handler are skipped
    (on event topics: another service's events this one does not need) or rejected (on request
    topics, where `request_types` lists what this consumer answers). `batch_handler`, when given,
    takes every new message of a batch at once (set-oriented services and benchmarks).

    The batch's last writes are the outbox rows and, with `on_answers`, the service's own request
    ledger. A `flush` hook takes over those writes, with whatever the batch handler left in
    `ctx.pending`, so a service can make them one statement with its own (each statement is a
    round trip inside the transaction, and a request waits for every one of them).

    `optimistic` (with `flush`) plans a batch's reads for the optimistic path described at the top
    of this module. The batch handler then finds them in `ctx.snapshot` and must write nothing
    itself; the flush hook writes everything in one statement, including the inbox rows in
    `ctx.inbox`, and raises serialization_failure when a row the rules read has changed since."""

    def __init__(
        self,
        *,
        service: str,
        group_id: str,
        topics: Sequence[str],
        bootstrap: str,
        pool: asyncpg.Pool,
        clock: Clock,
        handlers: Mapping[str, Handler] | None = None,
        batch_handler: BatchHandler | None = None,
        request_types: Sequence[str] = (),
        request_topics: Sequence[str] = (),
        model_for: ModelLookup | None = None,
        observer: ConsumerObserver | None = None,
        on_committed: Callable[[], None] | None = None,
        on_answers: AnswersHook | None = None,
        flush: FlushHook | None = None,
        skip: Callable[[ConsumerRecord], bool] | None = None,
        optimistic: Optimistic | None = None,
        batch_max: int = 1000,
        batch_timeout_ms: int = 50,
        commit_interval_s: float = 0.2,
        client_id: str | None = None,
    ) -> None:
        if (handlers is None) == (batch_handler is None):
            raise ValueError("give exactly one of handlers and batch_handler")
        self.service = service
        self.group_id = group_id
        self.topics = list(topics)
        self._bootstrap = bootstrap
        self._pool = pool
        self._clock = clock
        self._handlers = dict(handlers or {})
        self._batch_handler = batch_handler
        self._request_types = set(request_types)
        self._request_topics = set(request_topics)
        self._model_for = model_for
        self._obs = observer or ConsumerObserver()
        self._on_committed = on_committed
        self._on_answers = on_answers
        if flush is not None and on_answers is not None:
            raise ValueError("a flush hook writes the answers itself: give flush or on_answers")
        self._flush = flush
        if optimistic is not None and (flush is None or batch_handler is None):
            raise ValueError("the optimistic path needs a batch handler and a flush hook that writes the inbox rows")
        self._optimistic = optimistic
        self._read_sql: dict[str, str] = {}
        self._skip = skip
        self._batch_max = batch_max
        self._batch_timeout_ms = batch_timeout_ms
        self._client_id = client_id or f"{service}-{group_id}"
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._committing: asyncio.Task[None] | None = None
        self._uncommitted: dict[TopicPartition, OffsetAndMetadata] = {}  # applied, offsets not yet committed
        self._committed_at = 0.0
        self.commit_interval_s = commit_interval_s
        self._stopping = False
        self._wrote_outbox = False  # since the last on_committed
        self.processed = 0
        self.batch_sizes: collections.deque[int] = collections.deque(maxlen=100)
        self._lag_at = 0.0
        self.last_error: str | None = None
        self.healthy = True

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self._bootstrap,
            group_id=self.group_id,
            client_id=self._client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._batch_max,
            max_poll_interval_ms=300_000,
            session_timeout_ms=30_000,
            heartbeat_interval_ms=3_000,
            fetch_max_wait_ms=self._batch_timeout_ms,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.group_id}")

    async def stop(self) -> None:
        """Finish the batch in hand (bounded), then leave the group."""
        self._stopping = True
        await finish_or_cancel(self._task)
        if self._consumer is not None:
            await self._consumer.stop()

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        return self._consumer

    async def lag(self) -> dict[tuple[str, int], int]:
        """Records behind the end of each assigned partition (last stable offset minus position)."""
        out: dict[tuple[str, int], int] = {}
        c = self._consumer
        if c is None:
            return out
        for tp in c.assignment():
            try:
                # A rebalance may take the partition between assignment() and these calls: they
                # then raise IllegalStateError, and the partition is simply not ours to report.
                end = c.last_stable_offset(tp)
                if end is None:
                    end = c.highwater(tp)
                if end is None:
                    continue
                pos = await asyncio.wait_for(c.position(tp), 1.0)
            except Exception:
                continue
            out[(tp.topic, tp.partition)] = max(0, end - pos)
        return out

    # ------------------------------------------------------------------ loop

    async def _run(self) -> None:
        """Fetch, parse, apply, commit. Depth-1 pipeline: while batch N's transaction is in the
        database, batch N+1 is fetched and parsed; N+1 is applied only after N committed."""
        assert self._consumer is not None
        consumer = self._consumer
        pending: tuple[asyncio.Task[None], dict[TopicPartition, OffsetAndMetadata]] | None = None
        try:
            while not self._stopping:
                try:
                    batches = await consumer.getmany(timeout_ms=200 if pending else 1000, max_records=self._batch_max)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.last_error = f"fetch: {type(exc).__name__}: {exc}"
                    log.warning("kafka fetch failed: %s", self.last_error)
                    await asyncio.sleep(1.0)
                    continue
                records = [r for rs in batches.values() for r in rs]
                parsed = [self._parse(r) for r in records]
                if pending is not None:
                    await self._finish(*pending)
                    pending = None
                if not records and self._uncommitted:
                    await self._commit_offsets(force=True)  # idle: what was applied is committed now
                if records:
                    self.batch_sizes.append(len(records))
                    offsets = {tp: OffsetAndMetadata(rs[-1].offset + 1, "") for tp, rs in batches.items() if rs}
                    pending = (asyncio.create_task(self._apply_durably(parsed)), offsets)
                if time.monotonic() - self._lag_at > 1.0:
                    self._lag_at = time.monotonic()
                    for (topic, partition), lag in (await self.lag()).items():
                        self._obs.lag(topic, partition, lag)
        finally:
            if pending is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(self._finish(*pending, wait=True))
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._commit_offsets(force=True))
            if self._committing is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(self._committing)

    async def _finish(
        self, task: asyncio.Task[None], offsets: dict[TopicPartition, OffsetAndMetadata], *, wait: bool = False
    ) -> None:
        """Wait for the batch's transaction, then commit its offsets to Kafka in the background:
        the next batch need not wait a broker round trip for it (the inbox makes an offset that
        lags a committed transaction harmless). `wait` (shutdown) commits now and waits for it."""
        await task
        self._uncommitted.update(offsets)
        await self._commit_offsets(force=wait)
        if wait and self._committing is not None:
            await self._committing

    async def _commit_offsets(self, *, force: bool) -> None:
        """Commit what was applied, at most every `commit_interval_s` unless `force`d (shutdown,
        idle). Under load a commit per batch cost a consumer about 6% of its CPU and the broker a
        request per batch; a crash replays at most that interval, which the inbox drops. One
        commit in flight at a time, so they stay in order."""
        if not self._uncommitted:
            return
        if not force and time.monotonic() - self._committed_at < self.commit_interval_s:
            return
        if self._committing is not None:
            await self._committing
        offsets, self._uncommitted = self._uncommitted, {}
        self._committed_at = time.monotonic()
        self._committing = asyncio.create_task(self._commit(offsets))

    async def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        assert self._consumer is not None
        try:
            await self._consumer.commit(offsets)
        except Exception as exc:  # a rebalance took the partition: the inbox absorbs the redelivery
            log.warning("offset commit failed (will be redelivered): %s: %s", type(exc).__name__, exc)

    async def process(self, records: Sequence[ConsumerRecord]) -> None:
        """Apply `records` durably: returns only once their effects are committed."""
        await self._apply_durably([self._parse(r) for r in records])

    async def _apply_durably(self, parsed: list[_Parsed]) -> None:
        if not parsed:
            return
        backoff = 0.1
        while True:
            try:
                await self._apply(parsed)
                self.healthy = True
                self.last_error = None
                break
            except asyncio.CancelledError:
                raise
            except TRANSIENT as exc:
                self.healthy = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("batch failed on an outage, retrying in %.1fs: %s", backoff, self.last_error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as exc:
                if len(parsed) > 1:
                    log.warning("batch of %d failed (%s); isolating the failing message", len(parsed), exc)
                    for p in parsed:
                        await self._apply_single_or_deadletter(p)
                    break
                await self._apply_single_or_deadletter(parsed[0], first_error=exc)
                break
        self.processed += len(parsed)
        if self._wrote_outbox and self._on_committed is not None:
            self._on_committed()  # only for rows to relay: an idle wake costs the leader a read
        self._wrote_outbox = False

    async def _apply_single_or_deadletter(self, p: _Parsed, first_error: Exception | None = None) -> None:
        backoff = 0.1
        error = first_error
        while error is None:
            try:
                await self._apply([p])
                return
            except asyncio.CancelledError:
                raise
            except TRANSIENT as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as exc:
                error = exc
        log.error(
            "handler failed on %s[%d]@%d: dead-lettering it",
            p.record.topic,
            p.record.partition,
            p.record.offset,
            exc_info=error,
        )
        p.incoming = None
        p.dead_reason = f"handler_failed: {type(error).__name__}: {error}"
        while True:
            try:
                await self._apply([p])
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    # ------------------------------------------------------------------ parsing

    def _parse(self, record: ConsumerRecord) -> _Parsed:
        position_key = f"{record.topic}:{record.partition}:{record.offset}"
        if self._skip is not None and self._skip(record):
            return _Parsed(record, position_key)  # not this consumer's business (no effect, no inbox row)
        raw = record.value
        if raw is None and record.topic == topics.REFERENCE:
            return _Parsed(record, position_key)  # a tombstone on the compacted reference topic
        if raw is None:
            return _Parsed(record, position_key, dead_reason="empty value (tombstone) on a non-compacted topic")
        try:
            doc = orjson.loads(raw)  # orjson + validate_python measured faster than validate_json here
        except orjson.JSONDecodeError as not_json:
            return _Parsed(record, position_key, dead_reason=f"not JSON: {not_json}")
        try:
            event = CloudEvent.model_validate(doc)
        except ValidationError as exc:
            return self._unparseable(record, position_key, doc, exc)
        unit = trusted_unit(event, record)
        is_request = record.topic in self._request_topics
        if not is_request and event.type not in self._handlers and self._batch_handler is None:
            return _Parsed(record, event.id)  # another service's event type: not ours to apply
        if is_request and event.type not in self._request_types:
            return _Parsed(
                record,
                event.id,
                reject_errors=[
                    ErrorItem("schema_violation", "type", f"{event.type!r} is not a request on {record.topic}")
                ],
                reject_to=unit or event.source,
                request_id=event.id,
                request_type=event.type,
            )
        data: Any = event.data
        model = self._model_for(event.type) if self._model_for else None
        if model is not None:
            try:
                data = model.model_validate(event.data)
            except ValidationError as exc:
                if is_request:
                    return _Parsed(
                        record,
                        event.id,
                        reject_errors=_schema_errors(exc),
                        reject_to=unit or event.source,
                        request_id=event.id,
                        request_type=event.type,
                    )
                return _Parsed(record, event.id, dead_reason=f"data does not match {event.type}: {_short(exc)}")
        incoming = Incoming(
            event, data, unit, record.topic, record.partition, record.offset, record.key, record.headers
        )
        return _Parsed(
            record,
            event.id,
            incoming=incoming,
            request_id=event.id if is_request else None,
            request_type=event.type if is_request else None,
            reject_to=unit or event.source,
        )

    def _unparseable(self, record: ConsumerRecord, position_key: str, doc: Any, exc: ValidationError) -> _Parsed:
        p = _Parsed(record, position_key, dead_reason=f"not a CloudEvent: {_short(exc)}")
        # Where a unit can be read, it gets its answer too.
        if isinstance(doc, dict) and isinstance(doc.get("source"), str) and doc["source"].startswith("unit/"):
            p.reject_to = doc["source"][5:]
            p.request_id = str(doc.get("id") or position_key)
            p.request_type = str(doc.get("type") or "")
            p.reject_errors = [ErrorItem("schema_violation", None, f"not a valid CloudEvent: {_short(exc)}")]
        return p

    # ------------------------------------------------------------------ applying

    async def _apply(self, parsed: Sequence[_Parsed]) -> None:
        t0 = time.perf_counter()
        work = [p for p in parsed if p.incoming is not None or p.dead_reason or p.reject_errors]
        if not work:
            return
        topic = parsed[0].record.topic
        with _tracer.start_as_current_span(
            f"consume {topic}",
            kind=trace.SpanKind.CONSUMER,
            attributes={"messaging.system": "kafka", "messaging.batch.message_count": len(work)},
        ):
            fresh = await self._apply_optimistically(work, topic) if self._optimistic is not None else None
            if fresh is None:
                fresh = await self._apply_in_transaction(work, topic)
        now = datetime.now(UTC)
        for p in fresh:
            if p.incoming is not None:
                self._obs.consumed(p.record.topic, p.incoming.event.type)
                self._obs.event_latency(p.record.topic, max(0.0, (now - p.incoming.event.time).total_seconds()))
        self._obs.batch_done(topic, time.perf_counter() - t0, len(parsed))

    async def _apply_in_transaction(self, work: list[_Parsed], topic: str) -> list[_Parsed]:
        async with self._pool.acquire() as conn, conn.transaction():
            keys = [p.inbox_key for p in work]
            new = set(
                await conn.fetchval(
                    INBOX_SQL,
                    keys,
                    [p.record.topic for p in work],
                )
            )
            seen: set[str] = set()
            fresh: list[_Parsed] = []
            for p in work:
                if p.inbox_key in new and p.inbox_key not in seen:
                    seen.add(p.inbox_key)
                    fresh.append(p)
            if len(fresh) < len(work):
                self._obs.duplicate(topic, len(work) - len(fresh))
            ctx = Context(conn=conn, clock=self._clock, service=self.service)
            await self._handle_fresh(ctx, fresh)
            if ctx.outbox:
                self._wrote_outbox = True  # (if this transaction rolls back, a wake is harmless)
            if self._flush is not None:
                await self._flush(conn, ctx)
            else:
                await write_outbox(conn, ctx.outbox)
                if self._on_answers is not None and ctx.answers:
                    await self._on_answers(conn, ctx.answers)
        ctx.committed()
        self._obs.path(topic, "locking")
        return fresh

    async def _apply_optimistically(self, work: list[_Parsed], topic: str) -> list[_Parsed] | None:
        """The batch in two statements and no transaction around them (see the module's docs), or
        None when it must take the locking path: a key repeats within the batch or is in the
        inbox already, the service plans no read for it, or the write met a concurrent change."""
        assert self._optimistic is not None
        assert self._flush is not None
        keys = [p.inbox_key for p in work]
        if len(set(keys)) < len(keys):
            return None
        plan = self._optimistic([p.incoming for p in work if p.incoming is not None])
        if plan is None:
            return None
        query, args = plan
        sql = self._read_sql.get(query)
        if sql is None:
            sql = self._read_sql[query] = SEEN_AND_READ_SQL.format(query)
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(sql, keys, *args)
            if row is None or row[0]:
                return None
            ctx = Context(
                conn=conn,
                clock=self._clock,
                service=self.service,
                snapshot=tuple(row)[1:],
                inbox=(keys, [p.record.topic for p in work]),
            )
            await self._handle_fresh(ctx, work)
            try:
                await self._flush(conn, ctx)
            except CONTENDED as exc:
                log.info("optimistic batch of %d gave way to the locking path: %s", len(work), exc)
                self._obs.path(topic, "contended")
                return None
        ctx.committed()
        if ctx.outbox:
            self._wrote_outbox = True
        self._obs.path(topic, "optimistic")
        return work

    async def _handle_fresh(self, ctx: Context, fresh: list[_Parsed]) -> None:
        """Dead letters, rejections of what could not be parsed, and the handlers for the rest."""
        to_handle: list[_Parsed] = []
        for p in fresh:
            if p.dead_reason is not None:
                self._deadletter(ctx, p)
            elif p.reject_errors is not None:
                self._answer(ctx, p, Rejected(p.reject_errors))
            else:
                to_handle.append(p)
        if to_handle:
            await self._handle(ctx, to_handle)

    async def _handle(self, ctx: Context, items: list[_Parsed]) -> None:
        if self._batch_handler is not None:
            incomings = [p.incoming for p in items if p.incoming is not None]
            results = await self._batch_handler(incomings, ctx)
            for p, outcome in zip(items, results, strict=True):
                if p.request_id is not None:
                    self._answer(ctx, p, outcome)
            return
        for p in items:
            inc = p.incoming
            assert inc is not None
            handler = self._handlers.get(inc.event.type)
            if handler is None:
                continue
            with ctx.handling(inc):
                try:
                    result: Accepted | Rejected | None = await handler(inc, ctx)
                except Rejected as exc:
                    result = exc
                if p.request_id is not None:
                    self._answer(ctx, p, result)

    def _answer(self, ctx: Context, p: _Parsed, result: Accepted | Rejected | None) -> None:
        """Exactly one answer per request on the feedback topic, keyed by the sending unit."""
        if p.request_id is None:
            return
        unit_key = p.reject_to or "unknown"
        if isinstance(result, Rejected):
            for e in result.errors:
                ctx.after_commit(functools.partial(self._obs.rejected, e.code))
            data: dict[str, Any] = {
                "request_id": p.request_id,
                "request_type": p.request_type or "",
                "errors": [e.as_dict() for e in result.errors],
            }
            etype = "credit.request.rejected"
        else:
            data = {
                "request_id": p.request_id,
                "request_type": p.request_type or "",
                "result_id": result.result_id if isinstance(result, Accepted) else p.request_id,
            }
            etype = "credit.request.accepted"
        event_time = p.incoming.event.time if p.incoming is not None else _record_time(p.record)
        doc = {
            "specversion": "1.0",
            "id": derived_id(p.request_id, self.service, "answer"),
            "source": f"platform/{self.service}",
            "type": etype,
            "time": event_time,
            "datacontenttype": "application/json",
            "correlationid": p.request_id,
            "causationid": p.request_id,
            "data": data,
        }
        ctx.outbox.append(OutboxMessage.of_document(topics.FEEDBACK, unit_key, doc))
        ctx.answers.append(
            Answer(
                p.request_id,
                p.request_type or "",
                unit_key,
                etype == "credit.request.accepted",
                data.get("result_id"),
                data.get("errors"),
                event_time,
            )
        )

    def _deadletter(self, ctx: Context, p: _Parsed) -> None:
        r = p.record
        ctx.after_commit(functools.partial(self._obs.deadlettered, r.topic))
        log.warning("dead-lettering %s[%d]@%d: %s", r.topic, r.partition, r.offset, p.dead_reason)
        ev = new_event(
            "credit.deadletter.recorded",
            f"platform/{self.service}",
            {
                "service": self.service,
                "topic": r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "key_b64": base64.b64encode(r.key).decode() if r.key is not None else None,
                "value_b64": base64.b64encode(r.value).decode() if r.value is not None else None,
                "error": p.dead_reason,
            },
            id=derived_id(p.inbox_key, self.service, "credit.deadletter.recorded"),
            time=_record_time(r),  # from the record, not the clock: a replay rebuilds the same event
        )
        msg = OutboxMessage.of_event(topics.DEADLETTER, None, ev)
        msg.key = r.key  # the dead-letter topic is keyed by the original key
        ctx.outbox.append(msg)
        if p.reject_errors is not None:
            self._answer(ctx, p, Rejected(p.reject_errors))


def _record_time(record: ConsumerRecord) -> datetime:
    return datetime.fromtimestamp(max(record.timestamp, 0) / 1000, UTC)


def _header_dict(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in headers or ():
        with contextlib.suppress(Exception):  # hostile header bytes are ignored, never fatal
            out[k] = v.decode("utf-8")
    return out


def _short(exc: ValidationError) -> str:
    errs = exc.errors(include_url=False)
    parts = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in errs[:5]]
    more = f" (+{len(errs) - 5} more)" if len(errs) > 5 else ""
    return "; ".join(parts) + more


def _schema_errors(exc: ValidationError) -> list[ErrorItem]:
    return [
        ErrorItem("schema_violation", ".".join(str(x) for x in e["loc"]) or None, e["msg"])
        for e in exc.errors(include_url=False)[:20]
    ]


__all__ = [
    "Accepted",
    "Answer",
    "BatchHandler",
    "Context",
    "ErrorItem",
    "Handler",
    "Incoming",
    "KafkaConsumerWrapper",
    "Optimistic",
    "ReadPlan",
    "Rejected",
    "reject",
    "trusted_unit",
]
