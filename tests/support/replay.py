"""What the replay tests of every service share: a digest of a schema's tables (to compare before
and after a replay), the records a service published on its output topics after given offsets,
and a counter read from Prometheus text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from credit_common.messaging.connection import kafka_options

from tests.support.kafka_admin import end_offsets


async def digest(admin: asyncpg.Connection, queries: Mapping[str, str]) -> dict[str, tuple[int, str]]:
    """name -> (count, md5) of each query (`SELECT count(*), md5(...)`)."""
    out = {}
    for name, sql in queries.items():
        row = await admin.fetchrow(sql)
        out[name] = (row[0], row[1])
    return out


async def published_by(
    bootstrap: str, service: str, topics: Sequence[str], since: Mapping[TopicPartition, int]
) -> list[dict[str, Any]]:
    """Records from `platform/<service>` on `topics` after the offsets `since`."""
    ends = await end_offsets(bootstrap, topics)
    wanted = [tp for tp, end in ends.items() if end > since.get(tp, 0)]
    if not wanted:
        return []
    marker = f'"source":"platform/{service}"'.encode()
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), enable_auto_commit=False)
    await consumer.start()
    found = []
    try:
        consumer.assign(wanted)
        for tp in wanted:
            consumer.seek(tp, since.get(tp, 0))
        remaining = set(wanted)
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, records in batch.items():
                for r in records:
                    if r.value is not None and marker in r.value:
                        found.append(orjson.loads(r.value))
                    if r.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
    finally:
        await consumer.stop()
    return found


def counter(metrics: str, name: str, topic: str | None = None) -> float:
    """The sum of a counter's samples in Prometheus text (of one topic's, when given)."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name + "{") and (topic is None or f'topic="{topic}"' in line):
            total += float(line.rsplit(" ", 1)[1])
    return total
