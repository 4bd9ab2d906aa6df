"""Warning service benchmark (issue 5), with the designation and warning services as processes:
while designate requests arrive at a steady 500/s (black-list designations of fresh companies,
the background), a fresh subject every second gets key-scrutiny designations in three key fields
(taxation, environment, work safety, by their national units); the latency is from sending the
third request to `credit.warning.listed` for that subject arriving on the warning events topic,
through both services and both outboxes. Goal: p99 at most 1 s."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from credit_common.contracts.envelope import CONTENT_TYPE, new_id
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.settings import Settings

from tests.support.kafka_admin import wait_caught_up
from tests.support.subjects import new_uscc

from .designation import Service as DesignationService
from .designation import designate_request
from .foundation import PARTITIONS, progress
from .harness import Result, ServiceUnderTest, console, driver_gc_paused, envelope_bytes
from .reads import percentiles

PORT = 28103
BACKGROUND_RATE = 500
KEY_FIELDS = (("taxation", "100000-SAT"), ("environment", "100000-MEE"), ("work_safety", "100000-MEM"))


def key_scrutiny_request(subject: str, field: str, unit: str) -> bytes:
    today = datetime.now(UTC).date().isoformat()
    return envelope_bytes(
        {
            "specversion": "1.0",
            "id": new_id(),
            "source": f"unit/{unit}",
            "type": "credit.designation.designate",
            "time": datetime.now(UTC).isoformat(),
            "subject": subject,
            "datacontenttype": "application/json",
            "data": {
                "list": "key_scrutiny",
                "standard": f"{field}-key_scrutiny",
                "subject": {"kind": "legal_person", "scheme": "uscc", "id": subject, "name": "Warning Bench Co."},
                "decision": {
                    "document_no": f"KS-{uuid.uuid4().hex[:8]}",
                    "decided_on": today,
                    "facts": f"Repeated violations in {field}.",
                },
            },
        }
    )


async def measure(settings: Settings, seconds: float) -> tuple[list[float], int]:
    """Latencies (ms) from the third request to the listing, and how many subjects were tried."""
    bootstrap = settings.kafka_bootstrap_servers
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap))
    await consumer.start()
    tps = [TopicPartition(topics.WARNING_EVENTS, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    producer = AIOKafkaProducer(**kafka_options(bootstrap), enable_idempotence=True, linger_ms=0)
    await producer.start()
    headers = [("content-type", CONTENT_TYPE.encode())]
    third_sent: dict[str, float] = {}
    listed: dict[str, float] = {}

    async def receive() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    ev: dict[str, Any] = orjson.loads(r.value)
                    if ev["type"] == "credit.warning.listed" and ev["subject"] in third_sent:
                        listed.setdefault(ev["subject"], now)

    async def background(stop: asyncio.Event) -> None:
        rng = random.Random(uuid.uuid4().int)
        t0 = time.perf_counter()
        i = 0
        while not stop.is_set():
            delay = t0 + i / BACKGROUND_RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            key, value, _ = designate_request(rng, i, datetime.now(UTC))
            await producer.send(topics.DESIGNATION_REQUESTS, value=value, key=key, headers=headers)
            i += 1

    async def subject_story(rng: random.Random) -> None:
        subject = new_uscc(rng)
        for n, (field, unit) in enumerate(KEY_FIELDS):
            value = key_scrutiny_request(subject, field, unit)
            if n == len(KEY_FIELDS) - 1:
                third_sent[subject] = time.perf_counter()
            await producer.send_and_wait(
                topics.DESIGNATION_REQUESTS, value=value, key=subject.encode(), headers=headers
            )

    receiver = asyncio.create_task(receive())
    stop = asyncio.Event()
    load = asyncio.create_task(background(stop))
    rng = random.Random(uuid.uuid4().int)
    stories = []
    tried = int(seconds)
    try:
        with driver_gc_paused(), progress() as bar:
            task = bar.add_task(f"warning listings under {BACKGROUND_RATE}/s", total=tried)
            for k in range(tried):
                stories.append(asyncio.create_task(subject_story(rng)))
                await asyncio.sleep(1.0)
                bar.update(task, completed=k + 1)
        await asyncio.gather(*stories)
        for _ in range(100):  # up to 10 s for the last listings
            if len(listed) >= tried:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await load
        receiver.cancel()
        await producer.stop()
        await consumer.stop()
    return [(listed[s] - third_sent[s]) * 1000 for s in listed], tried


async def run(settings: Settings, seconds: float) -> list[Result]:
    console.print(f"[bold]warning[/] benchmark: {seconds:.0f}s, a subject a second, {BACKGROUND_RATE}/s around")
    designation = DesignationService()
    warning = ServiceUnderTest("warning", PORT)
    try:
        await asyncio.gather(designation.start(), warning.start())
        # Start from services that have read what earlier benchmarks left on their topics.
        bootstrap = settings.kafka_bootstrap_servers
        await asyncio.gather(
            wait_caught_up(bootstrap, "warning", [topics.DESIGNATION_EVENTS, topics.CONDUCT_REPORTS], timeout=900),
            wait_caught_up(bootstrap, "designation", [topics.DESIGNATION_REQUESTS], timeout=900),
        )
        lat, tried = await measure(settings, seconds)
    finally:
        await asyncio.gather(designation.stop(), warning.stop())
    if not lat:
        raise AssertionError("no subject was listed")
    p50, p99 = percentiles(lat)
    return [
        Result(
            "warning_listing_latency",
            len(lat),
            p99,
            unit="ms p99",
            peak_rss_mb=warning.peak_rss_mb,
            extra={
                "p50_ms": f"{p50:.1f}",
                "p99_ms": f"{p99:.1f}",
                "listed": f"{len(lat)}/{tried}",
                "background_per_s": BACKGROUND_RATE,
                "goal_p99_ms": 1000,
            },
        )
    ]
