"""The outbox relay's leadership, against the real database and broker: with several instances of
a service, exactly one relays (a session advisory lock on its own connection), a row committed in
a follower reaches Kafka through the leader at once (NOTIFY, not the leader's poll), and when the
leader stops a follower takes over and nothing is lost or reordered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from credit_common.contracts.envelope import new_event
from credit_common.db import pool as dbpool
from credit_common.db.outbox import LEAD_SQL, OutboxMessage, OutboxRelay, write_outbox
from credit_common.messaging.producer import make_producer
from credit_common.settings import Settings

from tests.support.database import owner_dsn, runtime_dsn


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def until_empty(pool: asyncpg.Pool, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while await pool.fetchval("SELECT count(*) FROM outbox"):
        assert asyncio.get_running_loop().time() < deadline, "the published rows were not deleted"
        await asyncio.sleep(0.02)


async def test_published_rows_are_deleted_with_the_next_claim_or_on_release(
    stack: Settings, schema_factory: Callable, topic_factory: Callable, reader: Callable
) -> None:
    """A round's acked rows are deleted by the statement that claims the next round's (one round
    trip a round): never published twice by a later round, and gone once the relay lets go."""
    pool: asyncpg.Pool = await schema_factory()
    schema = await pool.fetchval("SELECT current_schema()")
    topic = await topic_factory("relay-delete", partitions=1)
    producer = make_producer(stack.kafka_bootstrap_servers, "relay-delete-test", linger_ms=0)
    await producer.start()
    relay = OutboxRelay(pool, producer, schema, batch_max=2)
    events = [new_event("test.thing.created", "platform/toy", {"n": n}, time=datetime.now(UTC)) for n in range(5)]
    try:
        async with pool.acquire() as conn, conn.transaction():
            await write_outbox(conn, [OutboxMessage.of_event(topic, "S1", e) for e in events])
        assert await relay._lead()
        assert await relay._round() == 2  # ids 1, 2: acked, not yet deleted
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 5
        assert await relay._round() == 2  # deletes 1, 2 as it claims 3, 4
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 3
        await relay._release()  # deletes 3, 4 as it lets go
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 1
        assert await relay.relay_once() == 1
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
        async with reader(topic) as r:
            await r.wait_for(lambda rs: len(rs) >= 5, timeout=5.0)
            await asyncio.sleep(0.5)
            recs = await r.poll()  # nothing more arrived: each row once, in order
        assert [orjson.loads(x.value)["id"] for x in recs] == [e.id for e in events]
    finally:
        await relay.stop()
        await producer.stop()
    await asyncio.wait_for(pool.close(), 10.0)


def plan_of(plan: Any) -> str:
    """The node types of an EXPLAIN (FORMAT JSON) plan (decoded by the pool's json codec), outermost first."""
    nodes: list[str] = []

    def walk(node: dict) -> None:
        nodes.append(node["Node Type"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return " > ".join(nodes)


async def test_the_claim_walks_the_primary_key_of_a_bloated_outbox(stack: Settings, schema_factory: Callable) -> None:
    """After a backlog the outbox heap stays large while it holds a few rows, and the planner then
    prefers a sequential scan and a sort (12-20 ms a claim in the designation benchmark). The
    leader's connection claims through the index; a borrowed connection gets the default back."""
    pool: asyncpg.Pool = await schema_factory(max_size=1)  # the relay borrows, and gives back, the one
    schema = await pool.fetchval("SELECT current_schema()")
    await pool.execute(
        "INSERT INTO outbox (topic, key, value) SELECT 't', NULL, convert_to(repeat('x', 600), 'UTF8')"
        " FROM generate_series(1, 30000)"
    )
    await pool.execute("DELETE FROM outbox WHERE id > 20")
    owner = await asyncpg.connect(owner_dsn(stack.database_url, schema))  # only the owner may vacuum
    try:
        await owner.execute(f"VACUUM (ANALYZE) {schema}.outbox")
    finally:
        await owner.close()
    claim = "EXPLAIN (FORMAT JSON) SELECT id, topic, key, value, headers FROM outbox ORDER BY id LIMIT 2000"
    async with pool.acquire() as conn:
        assert "Seq Scan" in plan_of(await conn.fetchval(claim)), "the premise: the planner's own choice"
    relay = OutboxRelay(pool, producer=None, schema=schema)
    assert await relay._lead()
    assert "Index Scan" in plan_of(await relay._conn.fetchval(claim))
    await relay._release()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SHOW enable_seqscan") == "on"
    await asyncio.wait_for(pool.close(), 10.0)


async def test_one_relay_leads_a_follower_wakes_it_and_takes_over(
    stack: Settings, schema_factory: Callable, topic_factory: Callable, reader: Callable
) -> None:
    pool: asyncpg.Pool = await schema_factory()
    schema = await pool.fetchval("SELECT current_schema()")
    topic = await topic_factory("relay", partitions=1)
    dsn = runtime_dsn(stack.database_url, schema)
    producer = make_producer(stack.kafka_bootstrap_servers, "relay-leader-test", linger_ms=0)
    await producer.start()

    def relay() -> OutboxRelay:
        # The leader's own poll is a minute away: only a NOTIFY can wake it in time.
        return OutboxRelay(
            pool,
            producer,
            schema,
            idle_poll_s=60.0,
            follower_poll_s=0.2,
            connect=lambda: dbpool.connect(dsn, schema=schema),
        )

    async def commit(n: int) -> str:
        event = new_event("test.thing.created", "platform/toy", {"n": n}, time=datetime.now(UTC))
        async with pool.acquire() as conn, conn.transaction():
            await write_outbox(conn, [OutboxMessage.of_event(topic, "S1", event)])
        return event.id

    a, b = relay(), relay()
    try:
        a.start()
        await until(lambda: a.leader)
        b.start()
        await until(lambda: b.rounds > 3)  # the follower asked three times, and began a fourth
        assert not b.leader, "two relays lead one outbox"

        first = await commit(1)
        b.wake()  # committed in the follower's process
        async with reader(topic) as r:
            await r.wait_for(lambda rs: len(rs) == 1, timeout=5.0)
        await until(lambda: a.total_published == 1)  # counted once Kafka acked it
        assert b.total_published == 0
        # Deleted by the leader's next claim, at once: not by a commit, not by its minute-long poll.
        await until_empty(pool)

        await a.stop()
        await until(lambda: b.leader, timeout=5.0)
        second = await commit(2)
        b.wake()
        async with reader(topic) as r:
            recs = await r.wait_for(lambda rs: len(rs) == 2, timeout=5.0)
        assert [orjson.loads(x.value)["id"] for x in recs] == [first, second]
        await until(lambda: b.total_published == 1)
        await until_empty(pool)
    finally:
        await a.stop()
        await b.stop()
        await producer.stop()
    # Both gave their connections back: closing the pool does not wait on the relays.
    await asyncio.wait_for(pool.close(), 10.0)


async def test_a_producer_broken_for_good_is_replaced_and_the_rows_go_out(
    stack: Settings, schema_factory: Callable, topic_factory: Callable, reader: Callable
) -> None:
    """After a broker restart an idempotent producer can fail every send with
    OutOfOrderSequenceNumber (seen: designation's and cases' relays stuck until a manual restart).
    The relay starts a fresh producer; the rows go out once each, in order."""
    from aiokafka.errors import OutOfOrderSequenceNumber

    pool: asyncpg.Pool = await schema_factory()
    schema = await pool.fetchval("SELECT current_schema()")
    topic = await topic_factory("relay-renew", partitions=1)
    broken = make_producer(stack.kafka_bootstrap_servers, "relay-broken-test", linger_ms=0)
    await broken.start()

    async def out_of_order(*_: Any, **__: Any) -> Any:
        raise OutOfOrderSequenceNumber("the broker lost this producer's sequence")

    broken.send_batch = out_of_order  # the state a restart leaves it in
    fresh: list[Any] = []

    async def renew() -> Any:
        producer = make_producer(stack.kafka_bootstrap_servers, "relay-fresh-test", linger_ms=0)
        await producer.start()
        fresh.append(producer)
        return producer

    relay = OutboxRelay(pool, broken, schema, renew=renew)
    events = [new_event("test.thing.created", "platform/toy", {"n": n}, time=datetime.now(UTC)) for n in range(4)]
    try:
        async with pool.acquire() as conn, conn.transaction():
            await write_outbox(conn, [OutboxMessage.of_event(topic, "S1", e) for e in events])
        relay.start()
        await until_empty(pool, timeout=20.0)
        assert relay.renewals == 1
        async with reader(topic) as r:
            await r.wait_for(lambda rs: len(rs) >= 4, timeout=10.0)
            await asyncio.sleep(0.5)
            recs = await r.poll()
        assert [orjson.loads(x.value)["id"] for x in recs] == [e.id for e in events]
    finally:
        await relay.stop()
        for producer in [broken, *fresh]:
            await producer.stop()
    await asyncio.wait_for(pool.close(), 10.0)


async def test_a_row_too_large_for_the_broker_is_parked_and_the_rows_after_it_go_out(
    stack: Settings, schema_factory: Callable, topic_factory: Callable, reader: Callable
) -> None:
    """One row over the topics' max.message.bytes at the head of the outbox was retried for
    ever, and every row after it waited. It is moved to outbox_parked (readiness red while it is
    there) and the others are published in order."""
    pool: asyncpg.Pool = await schema_factory()
    schema = await pool.fetchval("SELECT current_schema()")
    topic = await topic_factory("relay-oversize", partitions=1)
    producer = make_producer(stack.kafka_bootstrap_servers, "relay-oversize-test", linger_ms=0)
    await producer.start()
    relay = OutboxRelay(pool, producer, schema)
    big = new_event("test.thing.created", "platform/toy", {"blob": "x" * (1024 * 1024 + 10)}, time=datetime.now(UTC))
    small = [new_event("test.thing.created", "platform/toy", {"n": n}, time=datetime.now(UTC)) for n in range(3)]
    try:
        async with pool.acquire() as conn, conn.transaction():
            await write_outbox(conn, [OutboxMessage.of_event(topic, "S1", e) for e in [small[0], big, *small[1:]]])
        relay.start()
        await until_empty(pool, timeout=20.0)
        assert relay.parked == 1
        assert await relay.parked_rows() == 1
        parked = await pool.fetchrow("SELECT topic, reason, value FROM outbox_parked")
        assert parked["topic"] == topic
        assert "max" in parked["reason"] or "over" in parked["reason"]
        assert orjson.loads(parked["value"])["id"] == big.id
        async with reader(topic) as r:
            await r.wait_for(lambda rs: len(rs) >= 3, timeout=10.0)
            await asyncio.sleep(0.5)
            recs = await r.poll()
        assert [orjson.loads(x.value)["id"] for x in recs] == [e.id for e in small]
        assert relay.last_error is None
    finally:
        await relay.stop()
        await producer.stop()
    await asyncio.wait_for(pool.close(), 10.0)


async def test_a_leader_silent_past_its_lease_loses_the_lock(stack: Settings, schema_factory: Callable) -> None:
    """The relay leader's connection is a lease: a leader cut off from the server (here: a
    connection that says nothing) is ended by the server after `lease_s`, its advisory lock
    with it, so another instance can lead; without it the lock lived as long as the server kept
    the dead session (hours, by TCP's keepalive)."""
    pool: asyncpg.Pool = await schema_factory()
    schema = await pool.fetchval("SELECT current_schema()")
    dsn = runtime_dsn(stack.database_url, schema)
    silent = await dbpool.connect(dsn, schema=schema, lease_s=1.0)
    other = await dbpool.connect(dsn, schema=schema)
    try:
        assert await silent.fetchval(LEAD_SQL, schema)
        assert not await other.fetchval(LEAD_SQL, schema), "one leader at a time"
        await asyncio.sleep(2.0)  # the leader says nothing for longer than its lease
        assert await other.fetchval(LEAD_SQL, schema), "the server ended the silent leader's session and lock"
        assert silent.is_closed() or not await _alive(silent)
    finally:
        silent.terminate()
        await other.close()
    await asyncio.wait_for(pool.close(), 10.0)


async def _alive(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except Exception:
        return False
    return True
