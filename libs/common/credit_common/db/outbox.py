"""The transactional outbox: events are written in the state change's transaction and a relay
publishes them. Nothing is emitted for a change that rolled back; nothing is lost when the process
dies after commit (at worst an event is published twice with the same id, which consumers drop)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry import trace
from opentelemetry.propagate import inject

from credit_common.contracts.envelope import CONTENT_TYPE, CloudEvent
from credit_common.messaging.producer import cached_partitioner
from credit_common.messaging.topics import MAX_RECORD_BYTES
from credit_common.tasks import finish_or_cancel, unasked_cancellation

log = logging.getLogger(__name__)

_COPY_THRESHOLD = 32
INSERT_SQL = "INSERT INTO outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4)"
LEAD_SQL = "SELECT pg_try_advisory_lock(hashtext('credit:relay:' || $1))"
UNLEAD_SQL = "SELECT pg_advisory_unlock(hashtext('credit:relay:' || $1))"
CLAIM_SQL = "SELECT id, topic, key, value, headers FROM outbox ORDER BY id LIMIT $1"
DELETE_SQL = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"
# The previous round's published rows are deleted by the statement that claims the next round's:
# one round trip a round, not two. The claim reads the statement's snapshot, which still shows
# the rows its CTE deletes, so they are left out by id (a hashed NOT IN).
DELETE_AND_CLAIM_SQL = """
WITH gone AS (DELETE FROM outbox WHERE id = ANY($2::bigint[]))
SELECT id, topic, key, value, headers FROM outbox
 WHERE id NOT IN (SELECT unnest($2::bigint[])) ORDER BY id LIMIT $1
"""
NOTIFY_SQL = "SELECT pg_notify($1, '')"
PARK_SQL = """
WITH moved AS (DELETE FROM outbox WHERE id = ANY($1::bigint[]) RETURNING *)
INSERT INTO outbox_parked (id, topic, key, value, headers, created_at, reason)
SELECT id, topic, key, value, headers, created_at, $2 FROM moved
"""
PARKED_SQL = "SELECT count(*) FROM outbox_parked"
#: The largest record the relay hands the broker: a topic takes batches up to MAX_RECORD_BYTES,
#: and a record alone needs room for the batch's own header beside it.
MAX_ROW_BYTES = MAX_RECORD_BYTES - 4096
# The claim must walk the primary key in order, whatever the table's statistics say. An outbox's
# heap keeps the size of its largest backlog (44 MB of pages for a few hundred rows after a
# million-request backfill), and with that the planner took a sequential scan and a sort: 12-20 ms
# per claim, a third of a core of PostgreSQL at 500 requests/s, where the index takes 0.3 ms.
# Set on the leader's connection for as long as it leads.
INDEX_ORDER_SQL = "SET enable_seqscan = off"
PLANNER_DEFAULT_SQL = "RESET enable_seqscan"


def channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel on which a schema's relay leader hears of newly committed rows."""
    return f"credit_outbox_{schema}"


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


def row_bytes(row: Any) -> int:
    """What a row weighs as a record: key, value and headers."""
    size = len(row["key"] or b"") + len(row["value"] or b"")
    return size + sum(len(k) + len(v) for k, v in _headers(row))


def _headers(row: Any) -> list[tuple[str, bytes]]:
    headers = [_CONTENT_TYPE_HEADER]
    if row["headers"]:
        headers.extend((k, v.encode()) for k, v in row["headers"].items())
    return headers


async def write_outbox(conn: asyncpg.Connection, messages: Sequence[OutboxMessage]) -> None:
    """Append `messages` to the outbox, in order, inside the caller's transaction."""
    if not messages:
        return
    records = [(m.topic, m.key, m.value, m.headers) for m in messages]
    if len(records) >= _COPY_THRESHOLD:
        await conn.copy_records_to_table("outbox", records=records, columns=["topic", "key", "value", "headers"])
    else:
        await conn.executemany(INSERT_SQL, records)


# The outbox rows as arrays, for a service that writes them in one statement with its own rows
# (`INSERT INTO outbox (topic, key, value, headers) SELECT ... FROM unnest(...) WITH ORDINALITY
# ... ORDER BY` the ordinality, so the ids follow the order the messages were emitted in).
OUTBOX_UNNEST_TYPES = ("text[]", "bytea[]", "bytea[]", "jsonb[]")


def outbox_arrays(
    messages: Sequence[OutboxMessage],
) -> tuple[list[str], list[bytes | None], list[bytes | None], list[dict[str, str] | None]]:
    return (
        [m.topic for m in messages],
        [m.key for m in messages],
        [m.value for m in messages],
        [m.headers for m in messages],
    )


class RelayObserver(Protocol):
    def published(self, topic: str, n: int) -> None: ...

    def pending(self, n: int) -> None: ...

    def publish_seconds(self, seconds: float) -> None: ...

    def leading(self, leads: bool) -> None: ...

    def outbox_parked(self, topic: str, n: int) -> None: ...


#: Failed rounds in a row, on Kafka errors the client calls retriable, before the relay starts a
#: fresh producer anyway (an error the client calls fatal renews it at once).
RENEW_AFTER_FAILURES = 3


class LeaseExpired(Exception):
    """The leader's claim is older than its lease allows: another instance may lead by now."""


class OutboxRelay:
    """Publishes outbox rows in id order and deletes them once Kafka acknowledged every one.

    One instance of a service relays at a time, its leader: leadership is a session-level advisory
    lock on the schema, held on a connection the relay keeps for as long as it leads. Only the
    leader reads the outbox, so events of one subject keep their order across instances, and a
    round is two statements (read, delete) rather than a locking transaction. The leader LISTENs
    on the schema's channel; an instance that is not the leader NOTIFYs it when it commits rows
    (`wake`), so no event waits for a poll. When the leader dies its connection closes and the
    lock with it; a follower takes over within `follower_poll_s`. A leader that dies between
    Kafka's ack and the delete leaves the rows for the next leader, which publishes them again
    with the same ids (consumers drop the repeat)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        schema: str,
        *,
        batch_max: int = 2000,
        idle_poll_s: float = 0.25,
        follower_poll_s: float = 0.5,
        observer: RelayObserver | None = None,
        crash_after_publish: bool = False,
        connect: Callable[[], Awaitable[asyncpg.Connection]] | None = None,
        renew: Callable[[], Awaitable[AIOKafkaProducer]] | None = None,
        lease_s: float | None = None,
    ) -> None:
        self._pool = pool
        # The leader's connection is a lease of `lease_s` (db.pool.connect): rows claimed longer
        # ago than half of it are not sent, since another leader may have them by then.
        self._lease_s = lease_s
        # A fresh started producer, for when this one is broken for good: an idempotent producer
        # that met OutOfOrderSequenceNumber (a broker restart does it) fails every later send.
        self._renew = renew
        self.renewals = 0
        # Leadership lives on a connection of its own (`connect`), outside the pool: a pool's
        # connections take no session state, and closing the pool must not wait for the relay.
        # Without it (tools, tests) the relay borrows one from the pool while it leads.
        self._connect = connect
        self._producer = producer
        self._schema = schema
        self._channel = channel(schema)
        self._batch_max = batch_max
        self._idle_poll_s = idle_poll_s
        self._follower_poll_s = follower_poll_s
        self._observer = observer
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None  # the leader's (or would-be leader's) connection
        self._published: list[int] = []  # ids published and acked, deleted with the next claim
        self._notifying: asyncio.Task[None] | None = None
        self._notify_again = False
        self._stopping = False
        # Fault injection for the crash test: SIGKILL self after Kafka acked, before the delete.
        self._crash_after_publish = crash_after_publish
        self.leader = False
        self.rounds = 0  # passes of the loop begun (to lead, follow or retry): its heartbeat
        self.parked = 0  # rows this process moved to outbox_parked
        self.total_published = 0
        self.last_error: str | None = None

    def wake(self) -> None:
        """Rows were committed: the leader relays them now. In the leader that is this process's
        own loop; in any other instance it is a NOTIFY. NOTIFYs do not pile up (one in flight),
        but none is lost either: a commit that lands while one is in flight gets another after
        it, since the leader may have read the outbox before that commit."""
        self._wake.set()
        if self.leader:
            return
        self._notify_again = True
        if self._notifying is None or self._notifying.done():
            self._notifying = asyncio.create_task(self._notify())

    async def _notify(self) -> None:
        while self._notify_again:
            self._notify_again = False
            try:
                await self._pool.execute(NOTIFY_SQL, self._channel)
            except Exception as exc:  # the leader's own poll picks the rows up
                log.debug("outbox notify failed: %s", exc)
                return

    def _heard(self, *_: object) -> None:
        self._wake.set()

    async def _lead(self) -> bool:
        """Take (or keep) leadership; True when this relay leads. A follower keeps its dedicated
        connection for the next try (a borrowed pool connection goes back)."""
        if self.leader:
            return True
        if self._conn is None:
            self._conn = await (self._connect() if self._connect is not None else self._pool.acquire())
        if await self._conn.fetchval(LEAD_SQL, self._schema):
            await self._conn.execute(INDEX_ORDER_SQL)
            await self._conn.add_listener(self._channel, self._heard)
            self.leader = True
            log.info("outbox relay of %s leads", self._schema)
            if self._observer is not None:
                self._observer.leading(True)
            return True
        if self._connect is None:
            await self._release()
        return False

    async def _release(self) -> None:
        """Give up leadership and the connection. A dedicated connection is closed (which ends
        its lock and LISTEN); a borrowed one is unlocked and unlistened, then given back."""
        conn, self._conn, led, self.leader = self._conn, None, self.leader, False
        published, self._published = self._published, []
        if led and self._observer is not None:
            self._observer.leading(False)
        if conn is None:
            return
        if published:
            with contextlib.suppress(Exception):  # else the next leader publishes them again
                await asyncio.wait_for(conn.execute(DELETE_SQL, published), 5.0)
        if self._connect is not None:
            try:
                await asyncio.wait_for(conn.close(), 5.0)
            except Exception:
                conn.terminate()
            return
        try:
            if led:
                await conn.remove_listener(self._channel, self._heard)
                await conn.execute(PLANNER_DEFAULT_SQL)
                await conn.fetchval(UNLEAD_SQL, self._schema)
        except Exception:
            conn.terminate()  # a broken connection: closing it is what ends the lock
        with contextlib.suppress(Exception):
            await self._pool.release(conn)

    async def _round(self) -> int:
        """As leader: delete the previous round's rows while claiming up to `batch_max` more in id
        order, publish them and wait for every ack (they are deleted with the next claim)."""
        assert self._conn is not None
        asked_at = time.monotonic()
        if self._published:
            rows = await self._conn.fetch(DELETE_AND_CLAIM_SQL, self._batch_max, self._published)
            self._published = []
        else:
            rows = await self._conn.fetch(CLAIM_SQL, self._batch_max)
        claimed_at = asked_at  # the lease held when the claim was asked (the server answered it)
        if not rows:
            return 0
        rows = await self._park_oversize(rows)
        if not rows:
            return 0
        t0 = time.perf_counter()
        if self._lease_s is not None and time.monotonic() - claimed_at > self._lease_s / 2:
            raise LeaseExpired(f"{len(rows)} rows claimed {time.monotonic() - claimed_at:.1f}s ago; not sent")
        futures = await self._send_batches(rows)
        if futures is None:  # a row too big for a batch of its own: one send per row
            futures = [
                await self._producer.send(r["topic"], value=r["value"], key=r["key"], headers=_headers(r)) for r in rows
            ]
        await asyncio.gather(*futures)
        if self._crash_after_publish:
            os.kill(os.getpid(), signal.SIGKILL)
        # Deleted with the next claim (or on release). Until then a crash republishes them: the
        # same events with the same ids, as a crash between the acks and a delete always could.
        self._published = [r["id"] for r in rows]
        if self._observer is not None:
            self._observer.publish_seconds(time.perf_counter() - t0)
            per_topic = collections.Counter(r["topic"] for r in rows)
            for topic, n in per_topic.items():
                self._observer.published(topic, n)
        self.total_published += len(rows)
        return len(rows)

    async def _park_oversize(self, rows: Sequence[Any]) -> Sequence[Any]:
        """The rows the broker would take; the others moved to `outbox_parked` (one oversize row
        at the head of the outbox would otherwise be retried for ever and hold every row after
        it), logged and counted."""
        big = [r for r in rows if row_bytes(r) > MAX_ROW_BYTES]
        if not big:
            return rows
        assert self._conn is not None
        reason = f"record over {MAX_ROW_BYTES} bytes (topics take {MAX_RECORD_BYTES})"
        await self._conn.execute(PARK_SQL, [r["id"] for r in big], reason)
        for r in big:
            log.error(
                "outbox row %s for %s parked: %d bytes, %s (see outbox_parked)",
                r["id"],
                r["topic"],
                row_bytes(r),
                reason,
            )
            if self._observer is not None:
                self._observer.outbox_parked(r["topic"], 1)
        self.parked += len(big)
        gone = {r["id"] for r in big}
        return [r for r in rows if r["id"] not in gone]

    async def parked_rows(self) -> int:
        """Rows in `outbox_parked` (readiness is red while there are any)."""
        async with self._pool.acquire() as conn:
            return int(await conn.fetchval(PARKED_SQL))

    async def _send_batches(self, rows: Sequence[Any]) -> list[asyncio.Future[Any]] | None:
        """The rows as one record batch per partition (in id order within each), handed to the
        producer whole: a per-message `send` (its future, its accumulator bookkeeping) cost the
        relay most of its CPU. Partitions are chosen as the producer's own partitioner would
        (murmur2 of the key, as Java clients do), so a key keeps its partition either way.
        None when a row does not fit a batch of its own (the caller then sends row by row)."""
        producer = self._producer
        partitions: dict[str, list[int]] = {}
        batches: dict[tuple[str, int], list[Any]] = {}
        for r in rows:
            topic = r["topic"]
            parts = partitions.get(topic)
            if parts is None:
                parts = partitions[topic] = sorted(await producer.partitions_for(topic))
            tp = (topic, cached_partitioner(r["key"], parts, parts))
            chain = batches.get(tp)
            if chain is None:
                chain = batches[tp] = [producer.create_batch()]
            headers = _headers(r)
            if chain[-1].append(timestamp=None, key=r["key"], value=r["value"], headers=headers) is None:
                chain.append(producer.create_batch())
                if chain[-1].append(timestamp=None, key=r["key"], value=r["value"], headers=headers) is None:
                    return None
        futures = []
        for (topic, partition), chain in batches.items():
            for batch in chain:
                batch.close()  # nothing else may join it (producer.send could, while open)
                futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures

    async def relay_once(self) -> int:
        """One round, outside the running loop (tools, tests, benchmarks): lead if no other
        instance does, publish, and give leadership back. Returns how many rows were published
        (0 when idle or when another instance leads)."""
        try:
            return await self._round() if await self._lead() else 0
        finally:
            await self._release()

    async def pending(self) -> int:
        async with self._pool.acquire() as conn:
            n = await conn.fetchval("SELECT count(*) FROM outbox")
        if self._observer is not None:
            self._observer.pending(int(n))
        return int(n)

    async def drain(self) -> int:
        """Until the outbox is empty (shutdown, tests, benchmarks). With the loop running, waits
        for the leader (this one or another) to empty it; otherwise relays itself."""
        total = 0
        if self._task is not None and not self._task.done():
            before = self.total_published
            while await self.pending() > 0:
                self.wake()
                await asyncio.sleep(0.05)
            return self.total_published - before
        try:
            while True:
                n = await self._round() if await self._lead() else 0
                total += n
                if n == 0 and await self.pending() == 0:
                    return total
                if n == 0:
                    await asyncio.sleep(0.05)
        finally:
            await self._release()

    async def _renew_producer(self) -> None:
        """Replace the producer with a fresh one (the rows not yet deleted go out again through
        it, with their ids: inboxes drop the repeats). While Kafka is away the fresh one cannot
        start: the old one stays and the next failed round tries again."""
        if self._renew is None:
            return
        try:
            self._producer = await self._renew()
        except Exception as exc:
            log.warning("outbox relay could not start a fresh producer yet: %s: %s", type(exc).__name__, exc)
            return
        self.renewals += 1
        log.warning("outbox relay of %s renewed its producer (%d so far)", self._schema, self.renewals)

    async def _run(self) -> None:
        backoff = 0.1
        failures = 0
        try:
            while not self._stopping:
                # Clear before the round, not after it: a wake() that lands while the round runs
                # (rows committed after its SELECT) must not be lost to the idle wait.
                self._wake.clear()
                self.rounds += 1
                try:
                    leads = await self._lead()
                    n = await self._round() if leads else 0
                    self.last_error = None
                    backoff = 0.1
                except (Exception, asyncio.CancelledError) as exc:  # Kafka or the database away: retry later
                    if isinstance(exc, asyncio.CancelledError) and not unasked_cancellation(exc):
                        raise
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    failures += 1
                    log.warning("outbox relay round failed; retrying in %.1fs: %s", backoff, self.last_error)
                    await self._release()
                    if isinstance(exc, KafkaError) and (not exc.retriable or failures >= RENEW_AFTER_FAILURES):
                        await self._renew_producer()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                failures = 0
                if not leads:  # a follower asks again on its poll (its own wakes went out as NOTIFYs)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopped.wait(), self._follower_poll_s)
                elif n == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._idle_poll_s)
        finally:
            await self._release()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._schema}")

    async def stop(self) -> None:
        """End the loop after its round in hand (bounded), giving leadership back."""
        self._stopping = True
        self._stopped.set()
        self._wake.set()
        await finish_or_cancel(self._task)
        if self._notifying is not None:
            with contextlib.suppress(Exception):
                await self._notifying
