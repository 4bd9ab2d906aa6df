"""Consumer-group operations tests need: reset to earliest (replay), and lag."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CoordinatorLoadInProgressError, GroupCoordinatorNotAvailableError, NotCoordinatorError
from aiokafka.structs import OffsetAndMetadata
from credit_common.messaging.connection import kafka_options


async def _partitions(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    tps: list[TopicPartition] = []
    for topic in topics:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps.extend(TopicPartition(topic, p) for p in sorted(parts))
    return tps


async def reset_to_earliest(bootstrap: str, group: str, topics: Sequence[str]) -> None:
    """Commit the earliest offsets of `topics` for `group` (which must have no live member)."""
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await _partitions(consumer, topics)
        consumer.assign(tps)  # manual assignment: commits go to the group without joining it
        earliest = await consumer.beginning_offsets(tps)
        await consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in earliest.items()})
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    """What `group` has committed (empty for a group that never committed). On a new broker the
    group coordinator (the offsets topic) appears with the first group: wait for it."""
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    await admin.start()
    deadline = asyncio.get_running_loop().time() + 60
    try:
        while True:
            try:
                found = await admin.list_consumer_group_offsets(group)
                break
            except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorError):
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in found.items() if meta is not None and meta.offset >= 0}


async def start_at(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit `offsets` for `group` (which must have no live member)."""
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))  # manual assignment: commits go to the group without joining it
        await consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in offsets.items()})
    finally:
        await consumer.stop()


async def reset_to_start(bootstrap: str, group: str, topics: Sequence[str], start: dict[TopicPartition, int]) -> None:
    """Replay: commit, for each partition of `topics`, where its deployment started reading it
    (`start`), or its earliest offset for a topic read whole (the reference topic)."""
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await _partitions(consumer, topics)
        earliest = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
    await start_at(bootstrap, group, {tp: start.get(tp, off) for tp, off in earliest.items()})


async def end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(await _partitions(consumer, topics)))
    finally:
        await consumer.stop()


async def group_lag(bootstrap: str, group: str, topics: Sequence[str]) -> int:
    """Records of `topics` not yet committed by `group` (a partition never committed counts whole)."""
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    ends = await end_offsets(bootstrap, topics)
    lag = 0
    for tp, end in ends.items():
        meta = committed.get(tp)
        lag += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
    return lag


async def wait_caught_up(bootstrap: str, group: str, topics: Sequence[str], timeout: float = 120.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        lag = await group_lag(bootstrap, group, topics)
        if lag == 0:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"group {group} still {lag} records behind after {timeout}s")
        await asyncio.sleep(0.5)
