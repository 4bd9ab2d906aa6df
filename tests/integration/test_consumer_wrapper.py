"""The consumer wrapper against the real broker and database: exactly-once effects, dead letters,
rejections, failure isolation, and the outbox relay surviving a kill -9 between publish and mark."""

from __future__ import annotations

import asyncio
import base64
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.clock import SystemClock
from credit_common.contracts.envelope import new_event
from credit_common.db.outbox import OutboxMessage, OutboxRelay, outbox_arrays, write_outbox
from credit_common.messaging import topics
from credit_common.messaging.apply import ConsumerObserver
from credit_common.messaging.consumer import KafkaConsumerWrapper
from credit_common.messaging.producer import make_producer
from credit_common.messaging.unit_of_work import Context, Incoming
from credit_common.outcomes import Accepted, Rejected, reject, request_key
from credit_common.settings import Settings
from pydantic import BaseModel

from tests.support.database import runtime_dsn

from .conftest import FIXTURES, TopicReader

pytestmark = pytest.mark.integration

CREATE = "test.thing.create"
CREATED = "test.thing.created"
RUN = uuid.uuid4().hex[:8]  # ids unique per run: the feedback and dead-letter topics are shared
KG, KH = f"K-garbage-{RUN}".encode(), f"K-half-{RUN}".encode()


class ThingCreate(BaseModel):
    name: str


class Toy:
    """A toy service: `test.thing.create` requests make `things` rows and `test.thing.created` events."""

    def __init__(self, events_topic: str) -> None:
        self.events_topic = events_topic
        self.calls = 0

    async def create(self, msg: Incoming, ctx: Context) -> Accepted:
        self.calls += 1
        data: ThingCreate = msg.data
        if data.name == "bad":
            raise reject("unknown_unit", "no such unit", "source")
        if data.name == "boom":
            raise RuntimeError("a bug in the handler")
        await ctx.conn.execute(
            "INSERT INTO things (thing_id, unit, name) VALUES ($1, $2, $3)",
            msg.event.id,
            msg.unit or "",
            data.name,
        )
        ctx.emit(self.events_topic, msg.event.subject, ctx.event(CREATED, {"thing_id": msg.event.id}))
        return Accepted(msg.event.id)


def request(name: str, *, id: str | None = None, unit: str = "110000-SAT") -> bytes:
    ev = new_event(CREATE, f"unit/{unit}", {"name": name}, time=datetime.now(UTC), subject="S1", id=id)
    return orjson.dumps(ev.model_dump(mode="json", exclude_none=True))


class Running:
    def __init__(self, wrapper: KafkaConsumerWrapper, relay: OutboxRelay, pool: asyncpg.Pool) -> None:
        self.wrapper = wrapper
        self.relay = relay
        self.pool = pool

    async def wait_processed(self, n: int, timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while self.wrapper.processed < n:
            assert asyncio.get_running_loop().time() < deadline, f"processed {self.wrapper.processed} of {n}"
            await asyncio.sleep(0.05)
        await self.relay.drain()


@pytest.fixture
async def toy(
    stack: Settings, schema_factory: Callable, topic_factory: Callable
) -> AsyncIterator[Callable[..., object]]:
    started: list[tuple[KafkaConsumerWrapper, OutboxRelay, AIOKafkaProducer]] = []

    async def start(pool: asyncpg.Pool, requests_topic: str, events_topic: str, group: str) -> Running:
        toy = Toy(events_topic)
        producer = make_producer(stack.kafka_bootstrap_servers, "toy-relay")
        await producer.start()
        relay = OutboxRelay(pool, producer, "toy")
        wrapper = KafkaConsumerWrapper(
            service="toy",
            group_id=group,
            topics=[requests_topic],
            bootstrap=stack.kafka_bootstrap_servers,
            pool=pool,
            clock=SystemClock(),
            handlers={CREATE: toy.create},
            request_types=[CREATE],
            request_topics=[requests_topic],
            model_for={CREATE: ThingCreate}.get,
            on_committed=relay.wake,
            batch_max=100,
        )
        await wrapper.start()
        relay.start()
        started.append((wrapper, relay, producer))
        return Running(wrapper, relay, pool)

    yield start
    for wrapper, relay, producer in started:
        await wrapper.stop()
        await relay.stop()
        await producer.stop()


async def feedback_for(reader: Callable[[str], TopicReader], request_ids: set[str], timeout: float = 20.0) -> dict:
    """Every feedback answer to `request_ids`: {request_id: [answers]}."""
    async with reader(topics.FEEDBACK) as r:
        await r.wait_for(
            lambda recs: request_ids <= {orjson.loads(x.value)["data"]["request_id"] for x in recs}, timeout
        )
        out: dict[str, list] = {}
        for x in r.records:
            ev = orjson.loads(x.value)
            rid = ev["data"]["request_id"]
            if rid in request_ids:
                out.setdefault(rid, []).append((x.key.decode(), ev))
        return out


async def test_redelivered_and_replayed_events_change_nothing(
    toy: Callable,
    schema_factory: Callable,
    topic_factory: Callable,
    producer: AIOKafkaProducer,
    reader: Callable,
) -> None:
    pool = await schema_factory(migrations=FIXTURES / "toy_migrations")
    req_topic, ev_topic = await topic_factory("req"), await topic_factory("ev")
    run = await toy(pool, req_topic, ev_topic, "toy-redelivery")
    first = request("alpha", id=f"req-alpha-1-{RUN}")
    await producer.send_and_wait(req_topic, first, key=b"S1")
    await producer.send_and_wait(req_topic, first, key=b"S1")  # a producer retry: same id
    await producer.send_and_wait(req_topic, request("beta"), key=b"S1")
    await run.wait_processed(3)

    rows = await pool.fetch("SELECT thing_id, name, counter FROM things ORDER BY name")
    assert [(r["name"], r["counter"]) for r in rows] == [("alpha", 1), ("beta", 1)]
    answers = await feedback_for(reader, {f"req-alpha-1-{RUN}"})
    assert len(answers[f"req-alpha-1-{RUN}"]) == 1, "one answer per request, however often it arrives"
    key, ev = answers[f"req-alpha-1-{RUN}"][0]
    assert key == "110000-SAT"
    assert ev["type"] == "credit.request.accepted"
    assert ev["data"]["result_id"] == f"req-alpha-1-{RUN}"

    # Replay: a new consumer group reads the topic from the start; nothing changes, nothing is emitted.
    outbox_before = await pool.fetchval("SELECT count(*) FROM outbox")
    run2 = await toy(pool, req_topic, ev_topic, "toy-redelivery-replay")
    await run2.wait_processed(3)
    assert await pool.fetchval("SELECT count(*) FROM things") == 2
    assert await pool.fetchval("SELECT count(*) FROM outbox") == outbox_before == 0
    async with reader(ev_topic) as r:
        await r.to_end()  # the outbox is empty: whatever the replay published is before the end
        assert len(r.records) == 2, "the replay published nothing new"


async def test_unparseable_message_is_dead_lettered_with_raw_bytes_and_the_consumer_goes_on(
    toy: Callable,
    schema_factory: Callable,
    topic_factory: Callable,
    producer: AIOKafkaProducer,
    reader: Callable,
) -> None:
    pool = await schema_factory(migrations=FIXTURES / "toy_migrations")
    req_topic, ev_topic = await topic_factory("req"), await topic_factory("ev")
    run = await toy(pool, req_topic, ev_topic, "toy-dlq")
    garbage = b"\xff\xfe not json at all \x00"
    half = orjson.dumps({"specversion": "1.0", "id": f"half-1-{RUN}", "source": "unit/310000-SAMR", "type": CREATE})
    await producer.send_and_wait(req_topic, garbage, key=KG, headers=[("traceparent", b"\xff\xfe")])
    await producer.send_and_wait(req_topic, half, key=KH)
    await producer.send_and_wait(req_topic, request("after", id=f"req-after-garbage-{RUN}"), key=b"S1")
    await run.wait_processed(3)

    assert await pool.fetchval("SELECT name FROM things") == "after", "the consumer went on"
    async with reader(topics.DEADLETTER) as r:
        recs = await r.wait_for(lambda rs: {KG, KH} <= {x.key for x in rs if x.key}, timeout=20)
        mine = {x.key: orjson.loads(x.value) for x in recs if x.key in (KG, KH)}
    dead = mine[KG]
    assert dead["type"] == "credit.deadletter.recorded"
    assert base64.b64decode(dead["data"]["value_b64"]) == garbage
    assert dead["data"]["topic"] == req_topic
    assert dead["data"]["service"] == "toy"
    assert "not JSON" in dead["data"]["error"]
    assert base64.b64decode(mine[KH]["data"]["value_b64"]) == half
    # The half-event names a unit and an id: that unit gets a schema_violation answer too.
    answers = await feedback_for(reader, {f"half-1-{RUN}"})
    ((key, ev),) = answers[f"half-1-{RUN}"]
    assert key == "310000-SAMR"
    assert ev["type"] == "credit.request.rejected"
    assert ev["data"]["errors"][0]["code"] == "schema_violation"


async def test_rule_violation_and_schema_violation_are_rejected_with_codes(
    toy: Callable,
    schema_factory: Callable,
    topic_factory: Callable,
    producer: AIOKafkaProducer,
    reader: Callable,
) -> None:
    pool = await schema_factory(migrations=FIXTURES / "toy_migrations")
    req_topic, ev_topic = await topic_factory("req"), await topic_factory("ev")
    run = await toy(pool, req_topic, ev_topic, "toy-reject")
    await producer.send_and_wait(req_topic, request("bad", id=f"req-bad-1-{RUN}", unit="440000-MEE"), key=b"S1")
    wrong = new_event(CREATE, "unit/440000-MEE", {"nom": 3}, time=datetime.now(UTC), id=f"req-wrong-1-{RUN}")
    await producer.send_and_wait(req_topic, orjson.dumps(wrong.model_dump(mode="json")), key=b"S1")
    other = new_event("test.thing.explode", "unit/440000-MEE", {}, time=datetime.now(UTC), id=f"req-type-1-{RUN}")
    await producer.send_and_wait(req_topic, orjson.dumps(other.model_dump(mode="json")), key=b"S1")
    await run.wait_processed(3)

    answers = await feedback_for(reader, {f"req-bad-1-{RUN}", f"req-wrong-1-{RUN}", f"req-type-1-{RUN}"})
    ((key, bad),) = answers[f"req-bad-1-{RUN}"]
    assert key == "440000-MEE"
    assert bad["type"] == "credit.request.rejected"
    assert bad["data"]["errors"] == [{"code": "unknown_unit", "field": "source", "message": "no such unit"}]
    ((_, wrong_answer),) = answers[f"req-wrong-1-{RUN}"]
    assert {e["code"] for e in wrong_answer["data"]["errors"]} == {"schema_violation"}
    assert "name" in {e["field"] for e in wrong_answer["data"]["errors"]}
    ((_, type_answer),) = answers[f"req-type-1-{RUN}"]
    assert type_answer["data"]["errors"][0]["field"] == "type"
    assert await pool.fetchval("SELECT count(*) FROM things") == 0


async def test_a_failing_handler_is_isolated_from_its_batch(
    toy: Callable,
    schema_factory: Callable,
    topic_factory: Callable,
    producer: AIOKafkaProducer,
    reader: Callable,
) -> None:
    pool = await schema_factory(migrations=FIXTURES / "toy_migrations")
    req_topic, ev_topic = await topic_factory("req", partitions=1), await topic_factory("ev")
    # Produce first, then start, so all three arrive in one batch.
    for name, rid in (("one", f"iso-1-{RUN}"), ("boom", f"iso-boom-{RUN}"), ("two", f"iso-2-{RUN}")):
        await producer.send_and_wait(req_topic, request(name, id=rid), key=b"S1")
    run = await toy(pool, req_topic, ev_topic, "toy-isolate")
    await run.wait_processed(3)
    assert sorted(r["name"] for r in await pool.fetch("SELECT name FROM things")) == ["one", "two"]

    def raw(x: object) -> bytes:
        return base64.b64decode(orjson.loads(x.value)["data"]["value_b64"] or "")  # type: ignore[attr-defined]

    async with reader(topics.DEADLETTER) as r:
        recs = await r.wait_for(lambda rs: any(f"iso-boom-{RUN}".encode() in raw(x) for x in rs))
    dead = next(orjson.loads(x.value) for x in recs if f"iso-boom-{RUN}".encode() in raw(x))
    assert dead["data"]["error"].startswith("handler_failed: RuntimeError")
    assert dead["data"]["value_sha256"]
    assert dead["data"]["value_bytes"] > 0
    # Every request is answered exactly once, a failure of the platform's own included.
    answers = await feedback_for(reader, {f"iso-boom-{RUN}", f"iso-1-{RUN}"})
    ((_, failed),) = answers[f"iso-boom-{RUN}"]
    assert failed["type"] == "credit.request.rejected"
    assert [e["code"] for e in failed["data"]["errors"]] == ["processing_failed"]
    ((_, fine),) = answers[f"iso-1-{RUN}"]
    assert fine["type"] == "credit.request.accepted"


RELAY_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from credit_common.db import pool as dbpool
    from credit_common.db.outbox import OutboxRelay
    from credit_common.messaging.producer import make_producer

    async def main(dsn, schema, bootstrap):
        pool = await dbpool.create_pool(dsn, schema=schema, application_name="relay-crash")
        producer = make_producer(bootstrap, "relay-crash")
        await producer.start()
        relay = OutboxRelay(pool, producer, schema, crash_after_publish=True)
        await relay.relay_once()
        print("relay survived: the crash hook did not fire", flush=True)

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def test_outbox_event_survives_relay_killed_between_publish_and_mark(
    stack: Settings,
    schema_factory: Callable,
    topic_factory: Callable,
    reader: Callable,
    tmp_path: Path,
) -> None:
    events_pool = await schema_factory()
    ev_topic = await topic_factory("ev", partitions=1)
    event = new_event("test.thing.created", "platform/toy", {"thing_id": "t-1"}, time=datetime.now(UTC))
    async with events_pool.acquire() as conn, conn.transaction():
        await write_outbox(conn, [OutboxMessage.of_event(ev_topic, "S1", event)])
    schema = await events_pool.fetchval("SELECT current_schema()")

    role_dsn = runtime_dsn(stack.database_url, schema)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RELAY_SCRIPT,
        role_dsn,
        schema,
        stack.kafka_bootstrap_servers,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == -9, f"relay should die by SIGKILL: {proc.returncode} {stderr[-2000:]!r}"
    async with reader(ev_topic) as r:
        await r.wait_for(lambda rs: len(rs) == 1)
    assert await events_pool.fetchval("SELECT count(*) FROM outbox") == 1, "the kill came before the mark"

    # A new relay publishes it again: at least once on the wire, same id both times.
    producer = make_producer(stack.kafka_bootstrap_servers, "relay-after-crash")
    await producer.start()
    try:
        assert await OutboxRelay(events_pool, producer, schema).drain() == 1
    finally:
        await producer.stop()
    async with reader(ev_topic) as r:
        recs = await r.wait_for(lambda rs: len(rs) == 2)
    ids = [orjson.loads(x.value)["id"] for x in recs]
    assert ids == [event.id, event.id]
    assert await events_pool.fetchval("SELECT count(*) FROM outbox") == 0

    # A consumer of that topic applies it once and drops the repeat by its id.
    consumer_pool = await schema_factory(migrations=FIXTURES / "toy_migrations")
    applied: list[str] = []

    async def on_created(msg: Incoming, ctx: Context) -> None:
        applied.append(msg.event.id)
        await ctx.conn.execute(
            "INSERT INTO things (thing_id, unit, name) VALUES ($1, '', 'from-event')", msg.data["thing_id"]
        )

    wrapper = KafkaConsumerWrapper(
        service="toy-downstream",
        group_id="toy-downstream-crash",
        topics=[ev_topic],
        bootstrap=stack.kafka_bootstrap_servers,
        pool=consumer_pool,
        clock=SystemClock(),
        handlers={"test.thing.created": on_created},
    )
    await wrapper.start()
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while wrapper.processed < 2:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
    finally:
        await wrapper.stop()
    assert applied == [event.id]
    assert await consumer_pool.fetchval("SELECT count(*) FROM things") == 1
    assert await consumer_pool.fetchval("SELECT count(*) FROM inbox") == 1


async def test_trace_context_travels_from_request_headers_to_emitted_events(
    toy: Callable,
    schema_factory: Callable,
    topic_factory: Callable,
    producer: AIOKafkaProducer,
    reader: Callable,
) -> None:
    from credit_common.telemetry.tracing import configure_tracing

    configure_tracing("toy", None)
    pool = await schema_factory(migrations=FIXTURES / "toy_migrations")
    req_topic, ev_topic = await topic_factory("req"), await topic_factory("ev")
    run = await toy(pool, req_topic, ev_topic, "toy-trace")
    trace_id = uuid.uuid4().hex
    parent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    await producer.send_and_wait(
        req_topic,
        request("traced", id=f"req-traced-{RUN}"),
        key=b"S1",
        headers=[("traceparent", parent.encode())],
    )
    await run.wait_processed(1)
    async with reader(ev_topic) as r:
        (created,) = await r.wait_for(lambda rs: len(rs) == 1)
    headers = dict(created.headers)
    assert headers["content-type"] == b"application/cloudevents+json"
    _version, out_trace, out_span, _flags = headers["traceparent"].decode().split("-")
    assert out_trace == trace_id, "the emitted event continues the request's trace"
    assert out_span != parent.split("-")[2], "under the consumer's own span"
    body = orjson.loads(created.value)
    assert body["causationid"] == f"req-traced-{RUN}"
    assert body["correlationid"] == f"req-traced-{RUN}"
    assert body["source"] == "platform/toy"


# ---------------------------------------------------------------------- the optimistic path

BUMP = "test.thing.bump"
# The toy's read: each named thing's counter as "name=counter" (its row version, for the check).
BUMP_READ = "SELECT coalesce(array_agg(name || '=' || counter), '{}') AS seen FROM things WHERE name = ANY($2::text[])"
# The toy's one write statement: inbox rows, counters, outbox rows, and the check of what was read
# (on the optimistic path, $10 not null), which locks the rows before the upsert changes them.
BUMP_WRITE = """
WITH inboxed AS (
  INSERT INTO inbox (event_id, topic, digest) SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])
), bumped AS (
  INSERT INTO things (thing_id, unit, name, counter) SELECT n, '', n, c FROM unnest($4::text[], $5::int[]) AS u(n, c)
  ON CONFLICT (thing_id) DO UPDATE SET counter = EXCLUDED.counter
), emitted AS (
  INSERT INTO outbox (topic, key, value, headers)
  SELECT * FROM unnest($6::text[], $7::bytea[], $8::bytea[], $9::jsonb[])
)
SELECT CASE
  WHEN $10::text[] IS NULL THEN true
  WHEN (SELECT coalesce(array_agg(v ORDER BY v), '{}')
          FROM (SELECT name || '=' || counter AS v FROM things WHERE name = ANY($4::text[]) FOR UPDATE) AS now_read)
     = (SELECT coalesce(array_agg(v ORDER BY v), '{}') FROM unnest($10::text[]) AS v) THEN true
  ELSE changed_since_read('things')
END
"""


class Paths(ConsumerObserver):
    def __init__(self) -> None:
        self.taken: list[str] = []
        self.rejections: list[str] = []
        self.dead_letters = 0

    def path(self, topic: str, path: str) -> None:
        self.taken.append(path)

    def rejected(self, code: str) -> None:
        self.rejections.append(code)

    def deadlettered(self, topic: str) -> None:
        self.dead_letters += 1


class Bumper:
    """A toy service on the optimistic path: `test.thing.bump` adds one to the named thing's counter."""

    def __init__(self, events_topic: str, pool: asyncpg.Pool) -> None:
        self.events_topic = events_topic
        self.pool = pool
        self.interfere = False  # a concurrent writer strikes between the next optimistic read and write
        self.interfered_in: list[str] = []  # the inbox keys of the batch it struck

    def plan(self, items: Sequence[Incoming]) -> tuple[str, list[Any]]:
        return BUMP_READ, [sorted({i.data.name for i in items})]

    async def batch(self, items: Sequence[Incoming], ctx: Context) -> list[Accepted | Rejected | None]:
        names = sorted({i.data.name for i in items})
        if ctx.snapshot is not None:
            (seen,) = ctx.snapshot
            expected: list[str] | None = list(seen)
            counters = {v.rsplit("=", 1)[0]: int(v.rsplit("=", 1)[1]) for v in seen}
        else:
            rows = await ctx.conn.fetch("SELECT name, counter FROM things WHERE name = ANY($1) FOR UPDATE", names)
            expected, counters = None, {r["name"]: r["counter"] for r in rows}
        for inc in items:
            with ctx.handling(inc):
                counters[inc.data.name] = counters.get(inc.data.name, 0) + 1
                ctx.emit(self.events_topic, inc.data.name, ctx.event(CREATED, {"thing_id": inc.data.name}))
        ctx.pending = (counters, expected)
        return [Accepted(i.data.name) for i in items]

    async def flush(self, conn: asyncpg.Connection, ctx: Context) -> None:
        if ctx.snapshot is not None and self.interfere:
            self.interfere = False
            self.interfered_in = list((ctx.inbox or ([], [], []))[0])
            await self.pool.execute("UPDATE things SET counter = counter + 100")  # another writer, committed
        counters, expected = cast(tuple[dict[str, int], list[str] | None], ctx.pending or ({}, None))
        keys, key_topics, digests = ctx.inbox or ([], [], [])
        await conn.execute(
            BUMP_WRITE,
            keys,
            key_topics,
            digests,
            list(counters),
            list(counters.values()),
            *outbox_arrays(ctx.outbox),
            expected,
        )


async def test_an_optimistic_batch_that_meets_a_concurrent_change_is_applied_again_under_locks(
    stack: Settings,
    schema_factory: Callable,
    topic_factory: Callable,
    producer: AIOKafkaProducer,
    reader: Callable,
) -> None:
    pool = await schema_factory(migrations=FIXTURES / "toy_migrations")
    req_topic, ev_topic = await topic_factory("req", partitions=1), await topic_factory("ev")
    bumper, paths = Bumper(ev_topic, pool), Paths()
    kafka = make_producer(stack.kafka_bootstrap_servers, "bumper-relay")
    await kafka.start()
    relay = OutboxRelay(pool, kafka, "toy")
    wrapper = KafkaConsumerWrapper(
        service="toy",
        group_id=f"bumper-{RUN}",
        topics=[req_topic],
        bootstrap=stack.kafka_bootstrap_servers,
        pool=pool,
        clock=SystemClock(),
        batch_handler=bumper.batch,
        request_types=[BUMP],
        request_topics=[req_topic],
        model_for={BUMP: ThingCreate}.get,
        flush=bumper.flush,
        optimistic=bumper.plan,
        observer=paths,
        on_committed=relay.wake,
    )
    await wrapper.start()
    relay.start()
    run = Running(wrapper, relay, pool)

    def bump(rid: str) -> bytes:
        ev = new_event(BUMP, "unit/110000-SAT", {"name": "x"}, time=datetime.now(UTC), id=rid)
        return orjson.dumps(ev.model_dump(mode="json", exclude_none=True))

    try:
        first, second = f"bump-1-{RUN}", f"bump-2-{RUN}"
        await producer.send_and_wait(req_topic, bump(first), key=b"x")
        await run.wait_processed(1)
        assert await pool.fetchval("SELECT counter FROM things WHERE name = 'x'") == 1
        assert paths.taken == ["optimistic"], "a batch no one else touches goes the optimistic way"

        # Between the second batch's read (x = 1) and its write, another writer makes x 101: the
        # write must not apply 1 + 1 over it. It fails whole, and the locking path applies the
        # batch to what is there now. The batch also holds a request this consumer does not answer
        # (rejected) and bytes that are no event (dead-lettered): applied twice, they are counted once.
        bumper.interfere = True
        other = f"other-{RUN}"
        wrong = new_event("test.thing.other", "unit/110000-SAT", {}, time=datetime.now(UTC), id=other)
        second_bytes = bump(second)
        sent = [
            await producer.send(req_topic, second_bytes, key=b"x"),
            await producer.send(req_topic, orjson.dumps(wrong.model_dump(mode="json", exclude_none=True)), key=b"x"),
            await producer.send(req_topic, b"not an event", key=b"x"),
        ]
        await asyncio.gather(*sent)
        await run.wait_processed(4)
        assert await pool.fetchval("SELECT counter FROM things WHERE name = 'x'") == 102
        assert paths.taken == ["optimistic", "contended", "locking"]
        assert len(bumper.interfered_in) == 3, "the three messages were one batch"
        # A request's inbox row is keyed by (source, id).
        inbox_key = request_key("unit/110000-SAT", second)
        assert await pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", inbox_key) == 1
        assert paths.rejections == ["schema_violation"], "counted once, after the commit"
        assert paths.dead_letters == 1, "counted once, after the commit"

        # A redelivery of the second request (the same bytes) takes the locking path, which drops it.
        await producer.send_and_wait(req_topic, second_bytes, key=b"x")
        await run.wait_processed(5)
        assert await pool.fetchval("SELECT counter FROM things WHERE name = 'x'") == 102
        assert paths.taken[-1] == "locking"

        answers = await feedback_for(reader, {first, second, other})
        assert {rid: len(a) for rid, a in answers.items()} == {first: 1, second: 1, other: 1}, "one answer each"
        deadline = asyncio.get_running_loop().time() + 20
        while await pool.fetchval("SELECT count(*) FROM outbox"):  # then all it emitted is on the topic
            assert asyncio.get_running_loop().time() < deadline, "the relay did not publish its outbox"
            await asyncio.sleep(0.05)
        async with reader(ev_topic) as r:
            await r.to_end()
            assert len(r.records) == 2, "one event per request: the failed optimistic write emitted nothing"
    finally:
        await wrapper.stop()
        await relay.stop()
        await kafka.stop()


async def test_a_nul_in_an_id_or_the_data_is_refused_and_the_consumer_goes_on(
    toy: Callable,
    schema_factory: Callable,
    topic_factory: Callable,
    producer: AIOKafkaProducer,
    reader: Callable,
) -> None:
    """The message that once stopped the designation service for every partition (PostgreSQL
    refused its id in the inbox, then in the dead letter keyed by it, in an unbounded retry)."""
    pool = await schema_factory(migrations=FIXTURES / "toy_migrations")
    req_topic, ev_topic = await topic_factory("req", partitions=1), await topic_factory("ev")
    nul_id = request("nul-id").replace(b'"id":"', b'"id":"nul\\u0000', 1)
    nul_data = request("nul\x00data", id=f"nul-data-{RUN}")
    for value in (nul_id, nul_data, request("after", id=f"after-nul-{RUN}")):
        await producer.send_and_wait(req_topic, value, key=b"S1")
    run = await toy(pool, req_topic, ev_topic, "toy-nul")
    await run.wait_processed(3)
    assert [r["name"] for r in await pool.fetch("SELECT name FROM things")] == ["after"]
    assert run.wrapper.healthy
    assert not run.wrapper.parked

    answers = await feedback_for(reader, {f"nul-data-{RUN}", f"after-nul-{RUN}", f"{req_topic}:0:0"})
    ((_, by_position),) = answers[f"{req_topic}:0:0"]  # the id itself cannot be stored or echoed
    assert by_position["data"]["errors"][0]["code"] == "schema_violation"
    ((_, nul_answer),) = answers[f"nul-data-{RUN}"]
    assert nul_answer["data"]["errors"][0] == {
        "code": "schema_violation",
        "field": "data.name",
        "message": "a NUL character cannot be stored",
    }
    ((_, after),) = answers[f"after-nul-{RUN}"]
    assert after["type"] == "credit.request.accepted"

    async with reader(topics.DEADLETTER) as r:
        recs = await r.wait_for(
            lambda rs: {0, 1} <= {orjson.loads(x.value)["data"]["offset"] for x in rs if req_topic in x.value.decode()}
        )
    ours = [orjson.loads(x.value) for x in recs if orjson.loads(x.value)["data"]["topic"] == req_topic]
    assert sorted(d["data"]["offset"] for d in ours) == [0, 1]
