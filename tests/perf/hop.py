"""The latency baseline of the designation benchmark: a plain aiokafka forwarder, as a process of
its own like the service, that consumes a 12-partition topic and produces every message to another,
then commits its offsets once Kafka acknowledged them (consume, produce, commit: the least a
service that answers requests through Kafka does, with no database and no rules). Driven at the
same steady rate by the same driver as the service, it shows what one hop through Kafka costs on
this machine, beside what the service adds.

    python -m tests.perf.hop BOOTSTRAP SRC DST GROUP
"""

from __future__ import annotations

import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from credit_common.messaging.connection import kafka_options


async def forward(bootstrap: str, src: str, dst: str, group: str) -> None:
    consumer = AIOKafkaConsumer(
        src,
        **kafka_options(bootstrap),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,  # as the service's consumer
    )
    producer = AIOKafkaProducer(**kafka_options(bootstrap), enable_idempotence=True, linger_ms=0)
    await consumer.start()
    await producer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
            futures = [
                await producer.send(dst, value=r.value, key=r.key) for records in batches.values() for r in records
            ]
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    bootstrap, src, dst, group = sys.argv[1:5]
    asyncio.run(forward(bootstrap, src, dst, group))  # until SIGTERM


if __name__ == "__main__":
    main()
