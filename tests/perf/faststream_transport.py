"""The bus's Kafka transport built on FastStream instead of aiokafka directly, for the measurement
that decides between them (issue 18): FastStream's `KafkaBroker` with a batch subscriber and manual
acknowledgement, handing each fetched batch to the very same parser and applier as the project's
consumer (inbox, state, outbox in one transaction), and acknowledging after it committed. Only the
Kafka side differs, so the ratio of the two drains is FastStream's cost or gain."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
from credit_common.clock import SystemClock
from credit_common.messaging.apply import BatchApplier, BatchHandler
from credit_common.messaging.parsing import Parser
from credit_common.settings import get_settings
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.security import SASLScram512
from rich.progress import Progress


async def drain(
    bootstrap: str,
    pool: asyncpg.Pool,
    topic: str,
    n: int,
    handle: BatchHandler,
    *,
    batch_max: int,
    bar: Progress | None = None,
) -> float:
    """Drain n pre-filled messages of `topic` through a FastStream batch subscriber; msgs/s."""
    applier = BatchApplier(service="bench", pool=pool, clock=SystemClock(), batch_handler=handle)
    parser = Parser(handled=None)
    done = asyncio.Event()
    processed = 0

    async def raw(msg: Any) -> Any:
        return msg.body  # the bus parses the envelope itself: no second JSON decode here

    s = get_settings()  # the harness's principal, as every client of the project authenticates
    security = SASLScram512(s.kafka_sasl_username, s.kafka_sasl_password.get_secret_value(), use_ssl=False)
    broker = KafkaBroker(bootstrap, logger=None, security=security)

    @broker.subscriber(
        topic,
        batch=True,
        group_id=f"bench-faststream-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        max_records=batch_max,
        batch_timeout_ms=50,
        ack_policy=AckPolicy.MANUAL,
        decoder=raw,
    )
    async def on_batch(bodies: list[bytes], message: KafkaMessage) -> None:
        nonlocal processed
        records: Sequence[Any] = message.raw_message  # the batch's ConsumerRecords
        await applier.apply([parser.parse(r) for r in records])
        await message.ack()  # after the transaction: commits the position of every partition
        processed += len(records)
        if processed >= n:
            done.set()

    task = bar.add_task("faststream transport", total=n) if bar is not None else None
    t0 = time.perf_counter()
    await broker.start()
    try:
        while not done.is_set():
            await asyncio.sleep(0.1)
            if bar is not None and task is not None:
                bar.update(task, completed=processed)
        elapsed = time.perf_counter() - t0
    finally:
        await broker.stop()
    return n / elapsed
