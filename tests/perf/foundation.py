"""Foundation benchmarks: raw aiokafka produce and batch consume, raw asyncpg COPY, and beside them
the consumer wrapper (parse, inbox, one state row and one outbox row per message, batched) and the
outbox relay. Goals (issue 2): wrapper >= 0.4 x raw COPY rows/s; relay >= 0.6 x raw aiokafka send."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from credit_common.clock import SystemClock
from credit_common.contracts.envelope import new_event
from credit_common.db import pool as dbpool
from credit_common.db.migrations import COMMON_MIGRATIONS, migrate
from credit_common.db.outbox import OutboxMessage, OutboxRelay, write_outbox
from credit_common.db.roles import drop_service_schema
from credit_common.messaging.apply import BatchHandler
from credit_common.messaging.connection import kafka_options
from credit_common.messaging.consumer import KafkaConsumerWrapper
from credit_common.messaging.producer import make_producer
from credit_common.messaging.topics import TopicSpec, ensure_topics
from credit_common.messaging.unit_of_work import Context, Incoming
from credit_common.settings import Settings
from credit_common.telemetry.observe import tune_garbage_collector
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tests.support.database import make_schema, owner_dsn

from . import faststream_transport
from .harness import Result, RssSampler, console

PARTITIONS = 12


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def sample_payloads(n: int) -> list[tuple[bytes, bytes]]:
    """n realistic designate-sized CloudEvents (about 600 bytes), keyed by subject."""
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        subject = f"9111000010{i:08d}"
        ev = new_event(
            "bench.designate",
            "unit/110000-SAT",
            {
                "list": "black",
                "standard": "taxation-black-major-violation",
                "subject": {
                    "kind": "legal_person",
                    "scheme": "uscc",
                    "id": subject,
                    "name": f"Bench Trading Co. {i}",
                },
                "decision": {
                    "document_no": f"京税稽罚〔2026〕{i}号",
                    "decided_on": "2026-11-20",
                    "facts": "Evaded taxes of RMB 1,250,000 by false invoicing over two years.",
                },
                "n": i,
            },
            time=now,
            subject=subject,
        )
        out.append((subject.encode(), orjson.dumps(ev.model_dump(mode="json", exclude_none=True))))
    return out


async def fill_topic(bootstrap: str, topic: str, payloads: Sequence[tuple[bytes, bytes]], label: str) -> float:
    """Produce `payloads` with a plain (idempotent) aiokafka producer; returns msgs/s."""
    producer = AIOKafkaProducer(
        **kafka_options(bootstrap), enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        with progress() as bar:
            task = bar.add_task(label, total=len(payloads))
            t0 = time.perf_counter()
            futures = []
            for i, (key, value) in enumerate(payloads):
                futures.append(await producer.send(topic, value=value, key=key))
                if i % 5000 == 4999:
                    bar.update(task, completed=i + 1)
            await asyncio.gather(*futures)
            elapsed = time.perf_counter() - t0
            bar.update(task, completed=len(payloads))
    finally:
        await producer.stop()
    return len(payloads) / elapsed


async def raw_consume(bootstrap: str, topic: str, n: int) -> float:
    """Batch-consume n messages from the beginning with a plain aiokafka consumer; msgs/s."""
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), enable_auto_commit=False, max_poll_records=1000)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got = 0
        t0 = time.perf_counter()
        while got < n:
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            got += sum(len(v) for v in batch.values())
        return n / (time.perf_counter() - t0)
    finally:
        await consumer.stop()


async def raw_copy(pool: asyncpg.Pool, payloads: Sequence[tuple[bytes, bytes]]) -> float:
    """COPY the rows the wrapper's state writes (event id, subject, the event's data as jsonb), in
    batches of 1000, from rows built before the clock starts."""
    n = len(payloads)
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS raw_copy (id text PRIMARY KEY, subject text, doc jsonb)")
        await conn.execute("TRUNCATE raw_copy")
        docs = [orjson.loads(v) for _, v in payloads]
        rows = [(d["id"], d["subject"], d["data"]) for d in docs]
        t0 = time.perf_counter()
        for i in range(0, n, 1000):
            await conn.copy_records_to_table("raw_copy", records=rows[i : i + 1000], columns=["id", "subject", "doc"])
        return n / (time.perf_counter() - t0)


async def bench_schema(settings: Settings, admin: asyncpg.Connection, schema: str) -> asyncpg.Pool:
    await drop_service_schema(admin, schema)
    await make_schema(admin, schema)
    dsn = owner_dsn(settings.database_url, schema)  # the benchmark makes its tables as the owner
    conn = await dbpool.connect(dsn, schema=schema)
    await migrate(conn, schema, [("common", COMMON_MIGRATIONS)])
    await conn.execute("CREATE TABLE IF NOT EXISTS bench_state (id text PRIMARY KEY, subject text, doc jsonb)")
    await conn.close()
    return await dbpool.create_pool(dsn, schema=schema, application_name=schema, min_size=2, max_size=4)


def bench_handler(out_topic: str) -> BatchHandler:
    """One state row and one outbox row per message, the batch's state by one COPY."""

    async def handle(items: Sequence[Incoming], ctx: Context) -> list[None]:
        await ctx.conn.copy_records_to_table(
            "bench_state",
            records=[(i.event.id, i.event.subject, i.event.data) for i in items],
            columns=["id", "subject", "doc"],
        )
        for i in items:
            ctx.begin(i)  # causation, correlation and a derived id for what it emits
            ctx.publish(out_topic, i.event.subject, "bench.recorded", {"id": i.event.id})
        ctx.begin(None)
        return [None] * len(items)

    return handle


async def wrapper_throughput(settings: Settings, pool: asyncpg.Pool, topic: str, out_topic: str, n: int) -> float:
    """Drain n pre-filled messages through the consumer wrapper: one state row and one outbox row
    per message, inbox rows, one transaction per batch, offsets committed after it. msgs/s."""
    handle = bench_handler(out_topic)

    wrapper = KafkaConsumerWrapper(
        service="bench",
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        bootstrap=settings.kafka_bootstrap_servers,
        pool=pool,
        clock=SystemClock(),
        batch_handler=handle,
        batch_max=settings.credit_consumer_batch_max,
    )
    with progress() as bar:
        task = bar.add_task("consumer wrapper", total=n)
        t0 = time.perf_counter()
        await wrapper.start()
        try:
            while wrapper.processed < n:
                await asyncio.sleep(0.1)
                bar.update(task, completed=wrapper.processed)
            elapsed = time.perf_counter() - t0
        finally:
            await wrapper.stop()
    count = await pool.fetchval("SELECT count(*) FROM bench_state")
    assert count == n, f"the wrapper wrote {count} state rows for {n} messages"
    return n / elapsed


async def faststream_throughput(settings: Settings, pool: asyncpg.Pool, topic: str, out_topic: str, n: int) -> float:
    """The same drain with FastStream as the Kafka transport (same parser, applier and handler)."""
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE bench_state, inbox, outbox")
    with progress() as bar:
        rate = await faststream_transport.drain(
            settings.kafka_bootstrap_servers,
            pool,
            topic,
            n,
            bench_handler(out_topic),
            batch_max=settings.credit_consumer_batch_max,
            bar=bar,
        )
    count = await pool.fetchval("SELECT count(*) FROM bench_state")
    assert count == n, f"the FastStream transport wrote {count} state rows for {n} messages"
    return rate


async def relay_throughput(settings: Settings, pool: asyncpg.Pool, topic: str, n: int) -> float:
    """Publish n outbox rows (already committed) through the relay until the outbox is empty; msgs/s."""
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE outbox")
        payloads = sample_payloads(min(n, 20_000))
        msgs = [
            OutboxMessage(
                topic,
                payloads[i % len(payloads)][0],
                payloads[i % len(payloads)][1],
                {"traceparent": f"00-{i:032x}-{i:016x}-01"},  # as traced events carry
            )
            for i in range(n)
        ]
        for i in range(0, n, 5000):
            async with conn.transaction():
                await write_outbox(conn, msgs[i : i + 5000])
    producer = make_producer(settings.kafka_bootstrap_servers, "bench-relay")
    await producer.start()
    relay = OutboxRelay(pool, producer, "bench", batch_max=settings.credit_relay_batch_max)
    try:
        with progress() as bar:
            task = bar.add_task("outbox relay", total=n)
            t0 = time.perf_counter()
            done = 0
            while done < n:
                done += await relay.relay_once()
                bar.update(task, completed=done)
            elapsed = time.perf_counter() - t0
    finally:
        await producer.stop()
    return n / elapsed


async def run(settings: Settings, n: int) -> list[Result]:
    bootstrap = settings.kafka_bootstrap_servers
    run_id = uuid.uuid4().hex[:8]
    in_topic, out_topic, relay_topic = (f"bench.{run_id}.{x}.v1" for x in ("in", "out", "relay"))
    await ensure_topics(
        bootstrap,
        [TopicSpec(t, partitions=PARTITIONS, retention_days=1) for t in (in_topic, out_topic, relay_topic)],
    )
    admin = await asyncpg.connect(settings.database_url)
    pool = await bench_schema(settings, admin, "bench")
    rss = RssSampler()
    results: list[Result] = []
    try:
        payloads = sample_payloads(n)
        async with rss.active():
            produce_rate = await fill_topic(bootstrap, in_topic, payloads, "raw aiokafka produce")
        results.append(Result("raw_aiokafka_produce", n, produce_rate, peak_rss_mb=rss.peak_mb))
        async with rss.active():
            consume_rate = await raw_consume(bootstrap, in_topic, n)
        results.append(Result("raw_aiokafka_consume", n, consume_rate, peak_rss_mb=rss.peak_mb))
        async with rss.active():
            copy_rate = await raw_copy(pool, payloads)
        results.append(Result("raw_asyncpg_copy", n, copy_rate, unit="rows/s", peak_rss_mb=rss.peak_mb))
        tune_garbage_collector()  # as a service process does once it has started
        async with rss.active():
            wrapper_rate = await wrapper_throughput(settings, pool, in_topic, out_topic, n)
        results.append(
            Result(
                "consumer_wrapper",
                n,
                wrapper_rate,
                baseline_case="raw_asyncpg_copy",
                baseline=copy_rate,
                goal=0.4,
                peak_rss_mb=rss.peak_mb,
                extra={"vs_raw_consume": f"{wrapper_rate / consume_rate:.2f}"},
            )
        )
        async with rss.active():
            faststream_rate = await faststream_throughput(settings, pool, in_topic, out_topic, n)
        results.append(
            Result(
                "consumer_faststream",
                n,
                faststream_rate,
                baseline_case="raw_asyncpg_copy",
                baseline=copy_rate,
                peak_rss_mb=rss.peak_mb,
                extra={
                    "vs_raw_consume": f"{faststream_rate / consume_rate:.2f}",
                    "vs_consumer_wrapper": f"{faststream_rate / wrapper_rate:.2f}",
                },
            )
        )
        async with rss.active():
            relay_rate = await relay_throughput(settings, pool, relay_topic, n)
        results.append(
            Result(
                "outbox_relay",
                n,
                relay_rate,
                baseline_case="raw_aiokafka_produce",
                baseline=produce_rate,
                goal=0.6,
                peak_rss_mb=rss.peak_mb,
            )
        )
    finally:
        await pool.close()
        await drop_service_schema(admin, "bench")
        await admin.close()
    return results
