"""Integration fixtures: the real Kafka broker and PostgreSQL that `make test` started.

Each test gets its own schema (with its own login role) and its own topics, so tests never see
each other's rows or messages; the shared feedback and dead-letter topics are read by id."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from credit_common.db import pool as dbpool
from credit_common.db.migrations import COMMON_MIGRATIONS, migrate
from credit_common.db.roles import drop_service_schema
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.messaging.topics import TopicSpec, ensure_topics
from credit_common.settings import Settings

from tests.support.database import make_schema, owner_dsn, runtime_dsn

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
async def admin(stack: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(stack.database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def schema_factory(stack: Settings, admin: asyncpg.Connection) -> AsyncIterator[Callable[..., asyncpg.Pool]]:
    """make(migrations=None) -> a pool logged in as a fresh schema's runtime role (migrated by its owner)."""
    made: list[tuple[str, asyncpg.Pool]] = []

    async def make(*, migrations: Path | None = None, max_size: int = 5) -> asyncpg.Pool:
        schema = f"it_{uuid.uuid4().hex[:10]}"
        await make_schema(admin, schema)
        dsn = runtime_dsn(stack.database_url, schema)
        conn = await dbpool.connect(owner_dsn(stack.database_url, schema), schema=schema)  # the owner migrates
        sources = [("common", COMMON_MIGRATIONS)]
        if migrations is not None:
            sources.append(("service", migrations))
        await migrate(conn, schema, sources)
        await conn.close()
        pool = await dbpool.create_pool(dsn, schema=schema, application_name=schema, max_size=max_size)
        made.append((schema, pool))
        return pool

    yield make
    for schema, pool in made:
        await pool.close()
        await drop_service_schema(admin, schema)


@pytest.fixture
async def topic_factory(stack: Settings) -> Callable[..., str]:
    async def make(prefix: str = "test", partitions: int = 3) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:10]}.v1"
        await ensure_topics(stack.kafka_bootstrap_servers, [TopicSpec(name, partitions=partitions, retention_days=1)])
        return name

    return make  # type: ignore[return-value]


@pytest.fixture
async def producer(stack: Settings) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(**kafka_options(stack.kafka_bootstrap_servers), enable_idempotence=True)
    await p.start()
    yield p
    await p.stop()


class TopicReader:
    """Reads a whole topic from the beginning (no group), polling with a deadline."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.records: list = []
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> TopicReader:
        self._consumer = AIOKafkaConsumer(**kafka_options(self.bootstrap), enable_auto_commit=False)
        await self._consumer.start()
        parts = self._consumer.partitions_for_topic(self.topic)
        if parts is None:
            await self._consumer._client.force_metadata_update()
            parts = self._consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._consumer is not None
        await self._consumer.stop()

    async def skip_to_end(self) -> None:
        """Read only what arrives from now on: a shared topic (feedback) may hold a long history."""
        assert self._consumer is not None
        tps = list(self._consumer.assignment())
        await self._consumer.seek_to_end(*tps)
        for tp in tps:
            await self._consumer.position(tp)

    async def poll(self) -> list:
        assert self._consumer is not None
        got = await self._consumer.getmany(timeout_ms=200)
        for rs in got.values():
            self.records.extend(rs)
        return self.records

    async def to_end(self, timeout: float = 20.0) -> list:
        """Read up to the topic's end as of now: everything already on it is in `records` (the
        marker for asserting that nothing more was published, once the producer's outbox is empty)."""
        assert self._consumer is not None
        tps = list(self._consumer.assignment())
        ends = await self._consumer.end_offsets(tps)
        deadline = asyncio.get_running_loop().time() + timeout
        for tp, end in ends.items():
            while await self._consumer.position(tp) < end:
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"timed out reading {self.topic} to its end")
                await self.poll()
        return self.records

    async def wait_for(self, predicate: Callable[[list], bool], timeout: float = 20.0) -> list:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            await self.poll()
            if predicate(self.records):
                return self.records
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting on {self.topic}; have {len(self.records)} records")


@pytest.fixture
def reader(stack: Settings) -> Callable[[str], TopicReader]:
    return lambda topic: TopicReader(stack.kafka_bootstrap_servers, topic)


__all__ = ["FIXTURES", "TopicReader", "topics"]
