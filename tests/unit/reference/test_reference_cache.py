"""The reference cache's catch-up, follow and skip logic, driven by an in-memory stand-in for the
aiokafka consumer (no broker: the real-broker test belongs in tests/integration)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from credit_common.contracts.envelope import new_event
from credit_common.contracts.reference import (
    REFERENCE_EVENT_TYPE,
    REFERENCE_SOURCE,
    CalendarRecord,
    FieldRecord,
    KeyRecord,
    ReferenceRecord,
    reference_key,
)
from credit_common.json import dumps
from credit_common.reference.cache import ReferenceCache

TOPIC = "credit.reference.v1"
TP = TopicPartition(TOPIC, 0)


def message(record: ReferenceRecord) -> tuple[bytes, bytes]:
    event = new_event(REFERENCE_EVENT_TYPE, REFERENCE_SOURCE, record.model_dump(mode="json"), time=datetime.now(UTC))
    return reference_key(record).encode(), dumps(event.model_dump(mode="json"))


class FakeConsumer:
    """What ReferenceCache uses of AIOKafkaConsumer, over a list of (key, value) messages."""

    def __init__(self, messages: list[tuple[bytes | None, bytes | None]], *, topic_exists: bool = True) -> None:
        self.log = list(messages)
        self.topic_exists = topic_exists
        self.pos = -1  # no valid position until seek_to_beginning
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def topics(self) -> set[str]:
        return {TOPIC} if self.topic_exists else set()

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return {0} if self.topic_exists and topic == TOPIC else None

    def assign(self, partitions: list[TopicPartition]) -> None:
        assert partitions == [TP]

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self.pos = 0

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.log) for tp in partitions}

    async def position(self, tp: TopicPartition) -> int:
        assert self.pos >= 0
        return self.pos

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, list[Any]]:
        if self.pos >= len(self.log):
            await asyncio.sleep(0.005)
            return {}
        batch = [
            SimpleNamespace(key=k, value=v, offset=self.pos + i)
            for i, (k, v) in enumerate(self.log[self.pos : self.pos + 2])
        ]
        self.pos += len(batch)
        return {TP: batch}


async def eventually(condition: Any, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


TAXATION = FieldRecord(code="taxation", name="Taxation", key_field=True)
CUSTOMS = FieldRecord(code="customs", name="Customs", key_field=True)
CAL_2027 = CalendarRecord(code="2027", holidays=[date(2027, 3, 1)], working_weekend_days=[])


async def test_catches_up_skips_bad_messages_and_follows() -> None:
    consumer = FakeConsumer(
        [
            message(TAXATION),
            (b"field:junk", b"{not json"),
            message(CUSTOMS),
            (b"field:finance", message(TAXATION)[1]),  # a record under another key
            (None, message(CUSTOMS)[1]),  # no key at all
            (b"field:customs", None),  # tombstone
            message(CAL_2027),
        ]
    )
    cache = ReferenceCache("unused:9092", consumer_factory=lambda: consumer, poll_timeout_ms=1)
    seen: list[tuple[str, str | None]] = []
    async_seen: list[str] = []

    def listener(key: str, record: ReferenceRecord | None) -> None:
        seen.append((key, None if record is None else record.kind))

    async def async_listener(key: str, record: ReferenceRecord | None) -> None:
        async_seen.append(key)

    def broken_listener(key: str, record: ReferenceRecord | None) -> None:
        raise RuntimeError("a listener's bug must not stop the cache")

    cache.add_listener(broken_listener)
    cache.add_listener(listener)
    cache.add_listener(async_listener)
    try:
        await cache.start(timeout=2)
        assert cache.ready.is_set()
        assert consumer.started
        assert cache.catalog.field("taxation") == TAXATION
        assert cache.catalog.field("customs") is None
        assert cache.catalog.field("finance") is None
        assert (cache.applied, cache.skipped) == (4, 3)
        assert seen == [
            ("field:taxation", "field"),
            ("field:customs", "field"),
            ("field:customs", None),
            ("calendar:2027", "calendar"),
        ]
        assert async_seen == [key for key, _ in seen]
        assert not cache.calendar.is_working_day(date(2027, 3, 1))
        assert cache.running

        # Following: a later change arrives and is applied; the calendar is rebuilt.
        consumer.log.append(message(CalendarRecord(code="2027", holidays=[], working_weekend_days=[])))
        await eventually(lambda: cache.applied == 5)
        assert cache.calendar.is_working_day(date(2027, 3, 1))
    finally:
        await cache.stop()
    assert consumer.stopped
    assert not cache.running
    await cache.stop()  # twice is fine


async def test_an_empty_topic_is_ready_at_once() -> None:
    cache = ReferenceCache("unused:9092", consumer_factory=lambda: FakeConsumer([]))
    try:
        await cache.start(timeout=2)
        assert len(cache.catalog) == 0
    finally:
        await cache.stop()


async def test_waits_for_the_topic_to_exist() -> None:
    consumer = FakeConsumer([message(TAXATION)], topic_exists=False)
    cache = ReferenceCache("unused:9092", consumer_factory=lambda: consumer, retry_backoff_s=0.01)
    try:
        await cache.start(wait=False)
        with pytest.raises(TimeoutError, match="not caught up"):
            await cache.wait_ready(timeout=0.05)
        assert not cache.ready.is_set()
        consumer.topic_exists = True
        await cache.wait_ready(timeout=2)
        assert cache.catalog.field("taxation") == TAXATION
    finally:
        await cache.stop()


async def test_a_crashed_task_surfaces_in_wait_ready() -> None:
    class Broken(FakeConsumer):
        async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
            raise OSError("boom")

    cache = ReferenceCache("unused:9092", consumer_factory=lambda: Broken([]))
    try:
        with pytest.raises(OSError, match="boom"):
            await cache.start(timeout=2)
    finally:
        await cache.stop()


async def test_a_record_from_another_source_is_skipped() -> None:
    """The catalogue holds the signing keys: a `key` record any other source writes (a leaked
    credential, a service) never reaches it (contracts.md, Security: only `reference` writes)."""
    key = KeyRecord(
        code="k-forged",
        principal="unit:110108-SAT",
        public_key="A" * 43,
        not_before=datetime(2026, 1, 1, tzinfo=UTC),
    )
    forged = new_event(
        REFERENCE_EVENT_TYPE, "platform/designation", key.model_dump(mode="json"), time=datetime.now(UTC)
    )
    cache = ReferenceCache("unused:9092", consumer_factory=lambda: FakeConsumer([]))
    assert not await cache.apply_message(reference_key(key).encode(), dumps(forged.model_dump(mode="json")))
    assert cache.catalog.key("k-forged") is None
    assert await cache.apply_message(*message(key))
    assert cache.catalog.key("k-forged") == key
