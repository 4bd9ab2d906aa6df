"""The Kafka side of the message bus: one consumer group's loop.

It fetches a batch, parses every record (`parsing`), has the batch applied all or nothing
(`apply`: inbox rows, state changes and outbox rows in one database transaction or statement) and
only after that commits the Kafka offsets. A crash anywhere before the database commit redelivers
the batch, and the inbox makes the redelivery change nothing; a crash after it loses nothing,
because the outbox holds every effect that still has to reach Kafka.

- A handler that fails unexpectedly rolls back the batch; the batch is then retried one message
  at a time, so only the message that really fails is dead-lettered and the consumer goes on.
- Database or broker outages are retried with backoff, never dead-lettered: nothing is skipped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalGenerationError, RebalanceInProgressError, UnknownMemberIdError
from aiokafka.structs import OffsetAndMetadata

from credit_common.clock import Clock
from credit_common.messaging.apply import (
    AnswersHook,
    BatchApplier,
    BatchHandler,
    ConsumerObserver,
    FlushHook,
    Handler,
    Optimistic,
)
from credit_common.messaging.connection import kafka_options
from credit_common.messaging.parsing import ModelLookup, Parsed, Parser
from credit_common.outcomes import ErrorItem
from credit_common.security.signing import Verifier
from credit_common.tasks import finish_or_cancel, unasked_cancellation

log = logging.getLogger(__name__)

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
#: Attempts at writing one dead letter that fails for a reason other than an outage, before the
#: message is parked (bounded: the NUL that once failed its dead letter retried for ever).
DEADLETTER_ATTEMPTS = 5
#: Errors at commit that mean another instance got there first (see `_apply_durably`), and how
#: many times a batch is applied again for them.
CONTENDED_AT_COMMIT = (asyncpg.ExclusionViolationError,)
#: How often an idle consumer makes sure its committed offsets reached its positions.
SETTLE_INTERVAL_S = 1.0
#: An offset commit the group's rebalance overtook.
REBALANCED = (CommitFailedError, IllegalGenerationError, RebalanceInProgressError, UnknownMemberIdError)
CONTENTION_RETRIES = 3
#: How often each consumer's lag gauge is sampled, whatever its loop is doing.
LAG_SAMPLE_S = 1.0


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

    `optimistic` (with `flush`) plans a batch's reads for the optimistic path described in
    `credit_common.messaging.apply`. The batch handler then finds them in `ctx.snapshot` and must write nothing
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
        verifier: Verifier | None = None,
        batch_max: int = 1000,
        batch_timeout_ms: int = 50,
        session_timeout_ms: int = 30_000,
        max_poll_interval_ms: int = 300_000,
        commit_interval_s: float = 0.2,
        client_id: str | None = None,
    ) -> None:
        self.service = service
        self.group_id = group_id
        self.topics = list(topics)
        self._bootstrap = bootstrap
        self._applier = BatchApplier(
            service=service,
            pool=pool,
            clock=clock,
            handlers=handlers,
            batch_handler=batch_handler,
            observer=observer,
            on_answers=on_answers,
            flush=flush,
            optimistic=optimistic,
        )
        self._parser = Parser(
            handled=self._applier.handled_types,
            request_types=request_types,
            request_topics=request_topics,
            model_for=model_for,
            skip=skip,
            verifier=verifier,
            clock=clock,
        )
        self._obs = observer or ConsumerObserver()
        self._on_committed = on_committed
        self._batch_max = batch_max
        self._batch_timeout_ms = batch_timeout_ms
        self._session_timeout_ms = session_timeout_ms
        self._max_poll_interval_ms = max_poll_interval_ms
        self._client_id = client_id or f"{service}-{group_id}"
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._committing: asyncio.Task[None] | None = None
        self._uncommitted: dict[TopicPartition, OffsetAndMetadata] = {}  # applied, offsets not yet committed
        self._last_committed: dict[TopicPartition, int] = {}  # what this member's commits last set
        self._settled_at = 0.0
        self._committed_at = 0.0
        self.commit_interval_s = commit_interval_s
        self._stopping = False
        self.processed = 0
        self.batch_sizes: collections.deque[int] = collections.deque(maxlen=100)
        self._lag_task: asyncio.Task[None] | None = None
        self.polled_at: float | None = None  # monotonic time the loop last came back from a fetch
        self.last_error: str | None = None
        self.healthy = True
        self.parked: list[str] = []  # topic:partition:offset of the messages that could not even be dead-lettered

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            **kafka_options(self._bootstrap),
            group_id=self.group_id,
            client_id=self._client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._batch_max,
            max_poll_interval_ms=self._max_poll_interval_ms,
            session_timeout_ms=self._session_timeout_ms,
            heartbeat_interval_ms=max(500, min(3_000, self._session_timeout_ms // 3)),
            fetch_max_wait_ms=self._batch_timeout_ms,
        )
        await self._consumer.start()
        self.polled_at = time.monotonic()
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.group_id}")
        self._task.add_done_callback(self._ended)
        # The lag gauge has its own task: sampled in the loop, it froze whenever the loop was stuck
        # (a dashboard showed lag 0 while a consumer retried one message for ever).
        self._lag_task = asyncio.create_task(self._sample_lag(), name=f"lag-{self.group_id}")

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The loop ends only when asked to (`stop`); any other end is logged with its cause (the
        readiness check names the consumer as not running from then on)."""
        if self._stopping:
            return
        error = None if task.cancelled() else task.exception()
        cause = "cancelled" if task.cancelled() else repr(error)
        self.last_error = f"loop ended: {cause}"
        log.error("consumer %s stopped unasked: %s", self.group_id, cause, exc_info=error)

    def stalled_for(self) -> float:
        """Seconds since the loop last came back from a fetch (0 before it started): a loop
        blocked in one batch, or gone from its group, stops coming back."""
        return 0.0 if self.polled_at is None else time.monotonic() - self.polled_at

    async def _sample_lag(self) -> None:
        while not self._stopping:
            with contextlib.suppress(Exception):
                for (topic, partition), lag in (await self.lag()).items():
                    self._obs.lag(topic, partition, lag)
            await asyncio.sleep(LAG_SAMPLE_S)

    async def stop(self) -> None:
        """Finish the batch in hand (bounded), then leave the group."""
        self._stopping = True
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag_task
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
                    self.polled_at = time.monotonic()
                except asyncio.CancelledError as exc:
                    if not unasked_cancellation(exc):
                        raise
                    self.last_error = "fetch: CancelledError raised by no cancellation"
                    log.warning("kafka fetch failed: %s", self.last_error)
                    await asyncio.sleep(1.0)
                    continue
                except Exception as exc:
                    self.last_error = f"fetch: {type(exc).__name__}: {exc}"
                    log.warning("kafka fetch failed: %s", self.last_error)
                    await asyncio.sleep(1.0)
                    continue
                records = [r for rs in batches.values() for r in rs]
                parsed = [self._parser.parse(r) for r in records]
                if pending is not None:
                    await self._finish(*pending)
                    pending = None
                if not records:
                    await self._settle_positions()
                if not records and self._uncommitted:
                    await self._commit_offsets(force=True)  # idle: what was applied is committed now
                if records:
                    self.batch_sizes.append(len(records))
                    offsets = {tp: OffsetAndMetadata(rs[-1].offset + 1, "") for tp, rs in batches.items() if rs}
                    pending = (asyncio.create_task(self._apply_durably(parsed)), offsets)
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

    async def _settle_positions(self) -> None:
        """Idle, with nothing in hand: every held partition's committed offset catches up with
        the consumer's position (at most once a second). Everything before a position is applied
        by then, but a commit the group's rebalance overtook leaves its offsets uncommitted, and
        when the partition stays with this member nothing replays them: the group showed a lag
        for ever (the chaos suite saw it after a relay leader was cut off from the database)."""
        now = time.monotonic()
        if self._consumer is None or now - self._settled_at < SETTLE_INTERVAL_S:
            return
        self._settled_at = now
        for tp in self._consumer.assignment():
            try:
                position = await asyncio.wait_for(self._consumer.position(tp), 1.0)
            except Exception:
                continue  # a rebalance took it meanwhile, or its position is being reset
            if position > self._last_committed.get(tp, -1) and tp not in self._uncommitted:
                self._uncommitted[tp] = OffsetAndMetadata(position, "")

    async def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Commit the offsets of the partitions this member still holds. A rebalance may have
        taken some (their new owner replays from the last commit; the inbox drops the repeats);
        the rest are kept for the next commit when this one fails, not dropped: a group idle
        after a rebalance otherwise keeps a lag of what it applied but never committed, and
        replays it all on its next start."""
        assert self._consumer is not None
        held = self._consumer.assignment()
        mine = {tp: meta for tp, meta in offsets.items() if tp in held}
        if not mine:
            return
        try:
            await self._consumer.commit(mine)
            self._last_committed.update((tp, meta.offset) for tp, meta in mine.items())
        except REBALANCED as exc:
            # The group moved on: every partition's next owner (this member too) starts from the
            # last commit and replays the rest, which the inbox drops. Retrying the commit with
            # the old generation would only start another rebalance.
            log.info("offset commit overtaken by a rebalance (replayed from the last commit): %s", exc)
        except (Exception, asyncio.CancelledError) as exc:  # the coordinator away: the next commit tries again
            if isinstance(exc, asyncio.CancelledError) and not unasked_cancellation(exc):
                raise
            log.warning("offset commit failed (kept for the next commit): %s: %s", type(exc).__name__, exc)
            held = self._consumer.assignment()
            for tp, meta in mine.items():
                later = self._uncommitted.get(tp)
                if tp in held and (later is None or later.offset < meta.offset):
                    self._uncommitted[tp] = meta

    async def process(self, records: Sequence[ConsumerRecord]) -> None:
        """Apply `records` durably: returns only once their effects are committed."""
        await self._apply_durably([self._parser.parse(r) for r in records])

    async def _apply_durably(self, parsed: list[Parsed]) -> None:
        if not parsed:
            return
        backoff = 0.1
        contended = 0
        while True:
            try:
                await self._applier.apply(parsed)
                self.healthy = True
                self.last_error = None
                break
            except asyncio.CancelledError as exc:
                if not unasked_cancellation(exc):
                    raise
                self.healthy = False
                self.last_error = "CancelledError raised by no cancellation"
                log.warning("batch failed (%s), retrying in %.1fs", self.last_error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except TRANSIENT as exc:
                self.healthy = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("batch failed on an outage, retrying in %.1fs: %s", backoff, self.last_error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except CONTENDED_AT_COMMIT as exc:
                # Another instance committed what this batch's read could not see: applied again,
                # the rules see it (a bounded number of times, then like any failure).
                contended += 1
                if contended > CONTENTION_RETRIES:
                    await self._isolate(parsed, exc)
                    break
                log.info("batch met a concurrent commit (%s); applying it again", type(exc).__name__)
                await asyncio.sleep(0.05 * contended)
            except Exception as exc:
                await self._isolate(parsed, exc)
                break
        self.processed += len(parsed)
        if self._applier.wrote_outbox and self._on_committed is not None:
            self._on_committed()  # only for rows to relay: an idle wake costs the leader a read
        self._applier.wrote_outbox = False

    async def _isolate(self, parsed: list[Parsed], exc: Exception) -> None:
        if len(parsed) > 1:
            log.warning("batch of %d failed (%s); isolating the failing message", len(parsed), exc)
            for p in parsed:
                await self._apply_single_or_deadletter(p)
            return
        await self._apply_single_or_deadletter(parsed[0], first_error=exc)

    async def _apply_single_or_deadletter(self, p: Parsed, first_error: Exception | None = None) -> None:
        backoff = 0.1
        error = first_error
        while error is None:
            try:
                await self._applier.apply([p])
                return
            except asyncio.CancelledError as exc:
                if not unasked_cancellation(exc):
                    raise
                self.last_error = "CancelledError raised by no cancellation"
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
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
        if p.request_id is not None:
            # Every request is answered exactly once: a failure of the platform's own is answered
            # too (contracts.md, Integrity rules), not left `pending` for ever.
            p.reject_errors = [
                ErrorItem("processing_failed", None, "the platform could not handle this request (dead-lettered)")
            ]
        failures = 0
        while True:
            try:
                await self._applier.apply([p])
                return
            except asyncio.CancelledError:
                raise
            except TRANSIENT as exc:  # the world is away: wait for it, however long
                self.last_error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:
                failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if failures >= DEADLETTER_ATTEMPTS:
                    self._park(p, exc)
                    return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _park(self, p: Parsed, error: Exception) -> None:
        """Even the dead letter could not be written: the message is left where it is on its topic
        (its position logged and kept), counted, and readiness turns red; the consumer moves on
        rather than stopping every partition behind one message."""
        position = f"{p.record.topic}:{p.record.partition}:{p.record.offset}"
        self.parked.append(position)
        self._obs.parked(p.record.topic)
        log.error("parked %s: even its dead letter failed: %s: %s", position, type(error).__name__, error)
