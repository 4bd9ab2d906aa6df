"""How a batch is applied: all or nothing, its inbox rows, state changes and outbox rows together.

Two strategies. The locking path is one transaction: the inbox rows first (what they return is the
new work), the handlers under lock, then the outbox and the answers. A service may also give an
optimistic path (`optimistic`): the batch's reads in one statement outside a transaction (with the
inbox check), and every write, the inbox rows included, in ONE statement that re-reads what the
rules read, locked, and fails if any of it changed. That is two round trips where the locking
transaction takes five (BEGIN, inbox, read, write, COMMIT). A statement is a transaction of its
own, so the batch is still all or nothing; when it fails on a concurrent change or on an inbox key
another consumer recorded meanwhile, the batch is applied again by the locking path, which is
what a redelivery, a repeated key or any batch the service does not plan for takes as well.

Requests get exactly one answer each (`credit.request.accepted` or `credit.request.rejected`,
keyed by the sending unit); what could not be parsed is written as a dead letter."""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from opentelemetry import trace

from credit_common.clock import Clock
from credit_common.contracts import types as T
from credit_common.contracts.envelope import new_event
from credit_common.contracts.registry import REGISTRY
from credit_common.db.outbox import OutboxMessage, write_outbox
from credit_common.messaging import topics
from credit_common.messaging.parsing import Parsed, record_time
from credit_common.messaging.unit_of_work import Answer, Context, Incoming
from credit_common.outcomes import Accepted, ErrorItem, Outcome, Rejected, derived_id
from credit_common.security.signing import principal_of

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("credit_common.consumer")

# Records the ids a batch has not seen before; returns them (what it returns is new work).
INBOX_SQL = (
    "WITH ins AS (INSERT INTO inbox (event_id, topic, digest)"
    " SELECT k, t, d FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(k, t, d)"
    " ON CONFLICT DO NOTHING RETURNING event_id)"
    " SELECT coalesce(array_agg(event_id), '{}') FROM ins"
)
# What the inbox holds of repeated keys (only asked when a batch has repeats of requests).
DIGESTS_SQL = "SELECT event_id, digest FROM inbox WHERE event_id = ANY($1::text[])"
# The optimistic path's read: has the inbox seen any of the batch ($1), and the service's own reads
# (one row; its parameters from $2 on).
SEEN_AND_READ_SQL = "SELECT EXISTS (SELECT 1 FROM inbox WHERE event_id = ANY($1::text[])) AS seen, r.* FROM ({}) AS r"
# What makes the optimistic path give way to the locking one: a row the rules read changed since
# (the service's write raises serialization_failure) or an inbox key came in meanwhile.
# A deferred exclusion constraint (one active entry per subject and standard) failing at the end
# is contention too: another instance inserted what this batch's read did not see.
CONTENDED = (asyncpg.SerializationError, asyncpg.UniqueViolationError, asyncpg.ExclusionViolationError)

Handler = Callable[[Incoming, Context], Awaitable[Accepted | None]]
AnswersHook = Callable[[asyncpg.Connection, list[Answer]], Awaitable[None]]
FlushHook = Callable[[asyncpg.Connection, Context], Awaitable[None]]
BatchHandler = Callable[[Sequence[Incoming], Context], Awaitable[Sequence[Outcome]]]
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
    def parked(self, topic: str) -> None: ...
    def batch_done(self, topic: str, seconds: float, n: int) -> None: ...
    def event_latency(self, topic: str, seconds: float) -> None: ...
    def path(self, topic: str, path: str) -> None: ...
    def lag(self, topic: str, partition: int, lag: int) -> None: ...


class BatchApplier:
    """Applies parsed batches of one consumer (see the module's docs). `wrote_outbox` tells the
    consumer whether a committed batch left rows for the relay."""

    def __init__(
        self,
        *,
        service: str,
        pool: asyncpg.Pool,
        clock: Clock,
        handlers: Mapping[str, Handler] | None = None,
        batch_handler: BatchHandler | None = None,
        observer: ConsumerObserver | None = None,
        on_answers: AnswersHook | None = None,
        flush: FlushHook | None = None,
        optimistic: Optimistic | None = None,
    ) -> None:
        if (handlers is None) == (batch_handler is None):
            raise ValueError("give exactly one of handlers and batch_handler")
        if flush is not None and on_answers is not None:
            raise ValueError("a flush hook writes the answers itself: give flush or on_answers")
        if optimistic is not None and (flush is None or batch_handler is None):
            raise ValueError("the optimistic path needs a batch handler and a flush hook that writes the inbox rows")
        self.service = service
        self._pool = pool
        self._clock = clock
        self._handlers = dict(handlers or {})
        self._batch_handler = batch_handler
        self._obs = observer or ConsumerObserver()
        self._on_answers = on_answers
        self._flush = flush
        self._optimistic = optimistic
        self._read_sql: dict[str, str] = {}
        self.wrote_outbox = False

    @property
    def handled_types(self) -> Sequence[str] | None:
        """The event types this consumer applies (None: a batch handler takes every type)."""
        return None if self._batch_handler is not None else list(self._handlers)

    async def apply(self, parsed: Sequence[Parsed]) -> None:
        """Apply one batch, all or nothing; raises what made it fail (nothing is then written)."""
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
                etype = p.incoming.event.type
                # A label never comes from untrusted input: a type neither the contract nor this
                # consumer's handlers name is "other".
                known = etype in REGISTRY or etype in self._handlers
                self._obs.consumed(p.record.topic, etype if known else "other")
                self._obs.event_latency(p.record.topic, max(0.0, (now - p.incoming.event.time).total_seconds()))
        self._obs.batch_done(topic, time.perf_counter() - t0, len(parsed))

    async def _apply_in_transaction(self, work: list[Parsed], topic: str) -> list[Parsed]:
        async with self._pool.acquire() as conn, conn.transaction():
            keys = [p.inbox_key for p in work]
            new = set(await conn.fetchval(INBOX_SQL, keys, [p.record.topic for p in work], [p.digest for p in work]))
            seen: set[str] = set()
            fresh: list[Parsed] = []
            repeats: list[Parsed] = []
            for p in work:
                if p.inbox_key in new and p.inbox_key not in seen:
                    seen.add(p.inbox_key)
                    fresh.append(p)
                else:
                    repeats.append(p)
            if repeats:
                self._obs.duplicate(topic, len(repeats))
            ctx = Context(conn=conn, clock=self._clock, service=self.service)
            await self._answer_conflicts(ctx, conn, fresh, repeats)
            await self._handle_fresh(ctx, fresh)
            if ctx.outbox:
                self.wrote_outbox = True  # (if this transaction rolls back, a wake is harmless)
            if self._flush is not None:
                await self._flush(conn, ctx)
            else:
                await write_outbox(conn, ctx.outbox)
                await keep_accepted(conn, ctx.accepted)
                if self._on_answers is not None and ctx.answers:
                    await self._on_answers(conn, ctx.answers)
        ctx.committed()
        self._obs.path(topic, "locking")
        return fresh

    async def _apply_optimistically(self, work: list[Parsed], topic: str) -> list[Parsed] | None:
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
                inbox=(keys, [p.record.topic for p in work], [p.digest for p in work]),
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
            self.wrote_outbox = True
        self._obs.path(topic, "optimistic")
        return work

    async def _answer_conflicts(
        self, ctx: Context, conn: asyncpg.Connection, fresh: list[Parsed], repeats: list[Parsed]
    ) -> None:
        """A repeated request id is a retry when it says the same (dropped, as always) and
        `duplicate_id` when it says something else (contracts.md, Integrity rules): its sender
        hears so, under an answer id of its own position, and the first request's answer and
        ledger row stay as they are."""
        asked = [p for p in repeats if p.request_id is not None and p.digest is not None]
        if not asked:
            return
        known: dict[str, bytes | None] = {p.inbox_key: p.digest for p in fresh}
        missing = [p.inbox_key for p in asked if p.inbox_key not in known]
        if missing:
            known.update((r["event_id"], r["digest"]) for r in await conn.fetch(DIGESTS_SQL, missing))
        conflicts = [p for p in asked if known.get(p.inbox_key) not in (None, p.digest)]
        if not conflicts:
            return  # retries (or rows from before digests were kept): nothing to say
        # Each conflict is answered once: its position goes in the inbox, so a replay is silent.
        positions = {f"{p.record.topic}:{p.record.partition}:{p.record.offset}": p for p in conflicts}
        first_time = set(
            await conn.fetchval(
                INBOX_SQL, list(positions), [p.record.topic for p in conflicts], [None] * len(conflicts)
            )
        )
        for position, p in positions.items():
            if position in first_time:
                conflict = ErrorItem("duplicate_id", "id", f"id {p.request_id} was used already for another request")
                self._answer(ctx, p, Rejected([conflict]), answer_key=position, ledger=False)

    async def _handle_fresh(self, ctx: Context, fresh: list[Parsed]) -> None:
        """Dead letters, rejections of what could not be parsed, and the handlers for the rest."""
        to_handle: list[Parsed] = []
        for p in fresh:
            if p.dead_reason is not None:
                self._deadletter(ctx, p)
            elif p.reject_errors is not None:
                self._answer(ctx, p, Rejected(p.reject_errors))
            else:
                to_handle.append(p)
        if to_handle:
            await self._handle(ctx, to_handle)

    async def _handle(self, ctx: Context, items: list[Parsed]) -> None:
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
                    result: Outcome = await handler(inc, ctx)
                except Rejected as exc:
                    result = exc
                if p.request_id is not None:
                    self._answer(ctx, p, result)

    def _answer(
        self, ctx: Context, p: Parsed, result: Outcome, *, answer_key: str | None = None, ledger: bool = True
    ) -> None:
        """Exactly one answer per request on the feedback topic, keyed by the sending unit. Its id
        derives from the message's inbox key: the request id, or the position of a message refused
        before it was proven (a bad signature, no signature, no envelope), whose id is not yet its
        sender's; from the request id, that refusal and the later answer to the real request
        shared one event id, and every consumer dropped the second as a repeat (found by the chaos
        fuzz). `answer_key` names a second answer to the same id, which the service's ledger does
        not record (`ledger=False`)."""
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
            etype = T.REQUEST_REJECTED
        else:
            data = {
                "request_id": p.request_id,
                "request_type": p.request_type or "",
                "result_id": result.result_id if isinstance(result, Accepted) else p.request_id,
            }
            if isinstance(result, Accepted) and result.detail:
                data.update(result.detail)
            etype = T.REQUEST_ACCEPTED
            inc = p.incoming
            if inc is not None and inc.signed is not None and inc.received_at is not None:
                ctx.accepted.append(
                    (
                        p.request_id,
                        p.request_type or "",
                        data["result_id"],
                        principal_of(inc.event.source) or inc.event.source,
                        inc.event.signaturekid,
                        inc.event.signature,
                        inc.received_at,
                        inc.signed.decode(),
                    )
                )
        event_time = p.incoming.at if p.incoming is not None else record_time(p.record)
        doc = {
            "specversion": "1.0",
            "id": derived_id(answer_key or p.inbox_key, self.service, "answer"),
            "source": f"platform/{self.service}",
            "type": etype,
            "time": event_time,
            "datacontenttype": "application/json",
            "correlationid": p.request_id,
            "causationid": p.request_id,
            "data": data,
        }
        ctx.outbox.append(OutboxMessage.of_document(topics.FEEDBACK, unit_key, doc))
        if not ledger:
            return
        ctx.answers.append(
            Answer(
                p.request_id,
                p.request_type or "",
                unit_key,
                etype == T.REQUEST_ACCEPTED,
                data.get("result_id"),
                data.get("errors"),
                event_time,
            )
        )

    def _deadletter(self, ctx: Context, p: Parsed) -> None:
        r = p.record
        ctx.after_commit(functools.partial(self._obs.deadlettered, r.topic))
        log.warning("dead-lettering %s[%d]@%d: %s", r.topic, r.partition, r.offset, p.dead_reason)
        ev = new_event(
            T.DEADLETTER_RECORDED,
            f"platform/{self.service}",
            {
                "service": self.service,
                "topic": r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "key_b64": base64.b64encode(r.key[:DEAD_KEY_BYTES]).decode() if r.key is not None else None,
                # At most 64 KiB of the value, with the SHA-256 of all of it (contracts.md,
                # Integrity rules): a dead letter of a near-limit message must itself fit.
                "value_b64": base64.b64encode(r.value[:DEAD_VALUE_BYTES]).decode() if r.value is not None else None,
                "value_bytes": len(r.value) if r.value is not None else 0,
                "value_sha256": hashlib.sha256(r.value).hexdigest() if r.value is not None else None,
                "error": (p.dead_reason or "")[:2000],
            },
            # Keyed by position, never by anything the message says (an id may be what broke it).
            id=derived_id(f"{r.topic}:{r.partition}:{r.offset}", self.service, T.DEADLETTER_RECORDED),
            time=record_time(r),  # from the record, not the clock: a replay rebuilds the same event
        )
        msg = OutboxMessage.of_event(topics.DEADLETTER, None, ev)
        msg.key = r.key[:DEAD_KEY_BYTES] if r.key is not None else None  # keyed by the original key
        ctx.outbox.append(msg)
        if p.reject_errors is not None:
            self._answer(ctx, p, Rejected(p.reject_errors))


#: What a dead letter keeps of the raw record (contracts.md, Integrity rules).
DEAD_VALUE_BYTES = 64 * 1024
DEAD_KEY_BYTES = 1024


ACCEPTED_SQL = """
INSERT INTO accepted_requests
    (request_id, request_type, result_id, principal, signaturekid, signature, received_at, signed)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::timestamptz[], $8::text[])
ON CONFLICT (principal, request_id) DO NOTHING
"""


async def keep_accepted(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """The audit rows of the accepted signed requests, in the batch's transaction (one statement)."""
    if rows:
        await conn.execute(ACCEPTED_SQL, *(list(column) for column in zip(*rows, strict=True)))
