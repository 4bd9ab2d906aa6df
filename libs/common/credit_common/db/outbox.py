"""The transactional outbox: events are written in the state change's transaction and a relay
publishes them. Nothing is emitted for a change that rolled back; nothing is lost when the process
dies after commit (at worst an event is published twice with the same id, which consumers drop)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.propagate import inject

from credit_common.contracts.envelope import CONTENT_TYPE, CloudEvent

log = logging.getLogger(__name__)

_COPY_THRESHOLD = 32
INSERT_SQL = "INSERT INTO outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4)"
LOCK_SQL = "SELECT pg_try_advisory_xact_lock(hashtext('credit:relay:' || $1))"
CLAIM_SQL = "SELECT id, topic, key, value, headers FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
DELETE_SQL = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"


@dataclass(slots=True)
class OutboxMessage:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, str] | None = None  # beyond content-type, which every row gets

    @classmethod
    def of_event(cls, topic: str, key: str | None, event: CloudEvent) -> OutboxMessage:
        """An event as it will go on the wire: structured CloudEvent JSON, with the current
        trace context (W3C traceparent) so the trace continues through Kafka."""
        value = event.__pydantic_serializer__.to_json(event, exclude_none=True)
        return cls(topic, key.encode() if key is not None else None, value, _trace_headers())

    @classmethod
    def of_document(cls, topic: str, key: str | None, doc: dict[str, object]) -> OutboxMessage:
        """A CloudEvent already laid out as a dict (times as datetimes): serialised by orjson."""
        return cls(topic, key.encode() if key is not None else None, orjson.dumps(doc), _trace_headers())


def _trace_headers() -> dict[str, str] | None:
    """W3C traceparent (and tracestate) of the current span, so the trace continues via Kafka.
    Only for a sampled span: an unsampled one would carry nothing a collector keeps."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid or not ctx.trace_flags.sampled:
        return None
    headers: dict[str, str] = {}
    inject(headers)
    return headers or None


_CONTENT_TYPE_HEADER = ("content-type", CONTENT_TYPE.encode())


async def write_outbox(conn: asyncpg.Connection, messages: Sequence[OutboxMessage]) -> None:
    """Append `messages` to the outbox, in order, inside the caller's transaction."""
    if not messages:
        return
    records = [(m.topic, m.key, m.value, m.headers) for m in messages]
    if len(records) >= _COPY_THRESHOLD:
        await conn.copy_records_to_table("outbox", records=records, columns=["topic", "key", "value", "headers"])
    else:
        await conn.executemany(INSERT_SQL, records)


class RelayObserver(Protocol):
    def published(self, topic: str, n: int) -> None: ...

    def pending(self, n: int) -> None: ...

    def publish_seconds(self, seconds: float) -> None: ...


class OutboxRelay:
    """Publishes outbox rows in id order and deletes them once Kafka acknowledged every one.

    Rows are claimed with `FOR UPDATE SKIP LOCKED`, and each round also takes a transaction-level
    advisory lock on the schema's outbox: with several instances only one relays at a time, so
    events of one subject keep their order across instances, and a dead instance delays nothing
    (its lock ends with its transaction)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        schema: str,
        *,
        batch_max: int = 2000,
        idle_poll_s: float = 0.25,
        observer: RelayObserver | None = None,
        crash_after_publish: bool = False,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._schema = schema
        self._batch_max = batch_max
        self._idle_poll_s = idle_poll_s
        self._observer = observer
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # Fault injection for the crash test: SIGKILL self after Kafka acked, before the delete.
        self._crash_after_publish = crash_after_publish
        self.total_published = 0
        self.last_error: str | None = None

    def wake(self) -> None:
        """Tell the relay that new rows were committed (saves waiting for the next poll)."""
        self._wake.set()

    async def relay_once(self) -> int:
        """One round: claim up to `batch_max` rows, publish, wait for every ack, delete. Returns
        how many rows were published (0 when idle or when another instance holds the lock)."""
        async with self._pool.acquire() as conn, conn.transaction():
            got = await conn.fetchval(LOCK_SQL, self._schema)
            if not got:
                return 0
            rows = await conn.fetch(CLAIM_SQL, self._batch_max)
            if not rows:
                return 0
            t0 = time.perf_counter()
            futures = []
            per_topic: dict[str, int] = {}
            for r in rows:
                headers = [_CONTENT_TYPE_HEADER]
                if r["headers"]:
                    headers.extend((k, v.encode()) for k, v in r["headers"].items())
                futures.append(await self._producer.send(r["topic"], value=r["value"], key=r["key"], headers=headers))
                per_topic[r["topic"]] = per_topic.get(r["topic"], 0) + 1
            await asyncio.gather(*futures)
            if self._crash_after_publish:
                os.kill(os.getpid(), signal.SIGKILL)
            await conn.execute(DELETE_SQL, [r["id"] for r in rows])
        if self._observer is not None:
            self._observer.publish_seconds(time.perf_counter() - t0)
            for topic, n in per_topic.items():
                self._observer.published(topic, n)
        self.total_published += len(rows)
        return len(rows)

    async def pending(self) -> int:
        async with self._pool.acquire() as conn:
            n = await conn.fetchval("SELECT count(*) FROM outbox")
        if self._observer is not None:
            self._observer.pending(int(n))
        return int(n)

    async def drain(self) -> int:
        """Relay until the outbox is empty (tests and benchmarks)."""
        total = 0
        while True:
            n = await self.relay_once()
            total += n
            if n == 0 and await self.pending() == 0:
                return total
            if n == 0:
                await asyncio.sleep(0.05)

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stopping:
            # Clear before the round, not after it: a wake() that lands while the round runs
            # (rows committed after its SELECT) must not be lost to the idle wait.
            self._wake.clear()
            try:
                n = await self.relay_once()
                self.last_error = None
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka or the database away: keep the rows, retry later
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("outbox relay round failed; retrying in %.1fs: %s", backoff, self.last_error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if n == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_poll_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._schema}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
