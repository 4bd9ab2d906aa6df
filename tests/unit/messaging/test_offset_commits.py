"""Offset commits after applied batches: at most one per `commit_interval_s` under load (each is a
broker request), always the latest offset of each partition, and nothing applied left uncommitted
when the stream goes idle or the consumer stops. Against a stand-in consumer that records commits."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata
from credit_common.messaging.consumer import KafkaConsumerWrapper

from tests.support.consumers import toy_wrapper

P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)


class RecordingConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.held = {P0, P1}
        self.failures = 0  # commits still to fail, as during a rebalance
        self.positions: dict[TopicPartition, int] = {P0: 0, P1: 0}

    def assignment(self) -> set[TopicPartition]:
        return set(self.held)

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the group is rebalancing")
        self.commits.append({tp: om.offset for tp, om in offsets.items()})


def wrapper(consumer: RecordingConsumer, interval: float) -> KafkaConsumerWrapper:
    w = toy_wrapper(commit_interval_s=interval)
    w._consumer = consumer
    return w


async def done() -> None:
    return None


def at(**offsets: int) -> dict[TopicPartition, OffsetAndMetadata]:
    return {{"p0": P0, "p1": P1}[k]: OffsetAndMetadata(v, "") for k, v in offsets.items()}


async def test_batches_within_the_interval_share_one_commit_of_the_latest_offsets() -> None:
    consumer = RecordingConsumer()
    w = wrapper(consumer, interval=60.0)
    await w._finish(asyncio.create_task(done()), at(p0=10))  # the first commits at once
    await w._finish(asyncio.create_task(done()), at(p0=20, p1=5))
    await w._finish(asyncio.create_task(done()), at(p0=30))
    assert w._committing is not None
    await w._committing
    assert consumer.commits == [{P0: 10}], "within the interval the later batches wait"
    await w._commit_offsets(force=True)  # the stream went idle
    assert w._committing is not None
    await w._committing
    assert consumer.commits == [{P0: 10}, {P0: 30, P1: 5}]
    await w._commit_offsets(force=True)
    assert len(consumer.commits) == 2, "nothing new applied: no commit"


async def test_every_batch_commits_once_the_interval_has_passed_and_shutdown_waits_for_it() -> None:
    consumer = RecordingConsumer()
    w = wrapper(consumer, interval=0.0)
    await w._finish(asyncio.create_task(done()), at(p0=1))
    await w._finish(asyncio.create_task(done()), at(p0=2), wait=True)
    assert consumer.commits == [{P0: 1}, {P0: 2}]


async def test_a_rebalance_drops_the_offsets_of_partitions_taken_and_keeps_the_rest_for_the_next_commit() -> None:
    """Found by the chaos suite: a commit that failed in a rebalance lost the offsets of the
    partitions the member kept, so a group idle after it showed a lag for ever (and replayed it
    all on its next start)."""
    consumer = RecordingConsumer()
    w = wrapper(consumer, interval=0.0)
    consumer.failures = 1
    await w._finish(asyncio.create_task(done()), at(p0=10, p1=7), wait=True)
    assert consumer.commits == []
    consumer.held = {P0}  # the rebalance gave p1 to another member
    await w._commit_offsets(force=True)  # the idle loop commits again
    assert w._committing is not None
    await w._committing
    assert consumer.commits == [{P0: 10}], "p0 kept and committed, p1 (not ours now) left out"


async def test_a_kept_offset_never_replaces_a_later_one() -> None:
    consumer = RecordingConsumer()
    w = wrapper(consumer, interval=0.0)
    consumer.failures = 1
    w._uncommitted = {}
    task = asyncio.create_task(w._commit(at(p0=10)))
    w._uncommitted.update(at(p0=20))  # a later batch applied while the commit was in flight
    await task
    assert w._uncommitted[P0].offset == 20


async def test_a_commit_overtaken_by_a_rebalance_is_not_retried() -> None:
    """Retried with the old generation, it started another rebalance, and another (the chaos
    suite saw a group rebalance every 3 s after a kill -9): the new owners replay instead."""
    consumer = RecordingConsumer()
    w = wrapper(consumer, interval=0.0)

    async def overtaken(offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        raise CommitFailedError("the group has already rebalanced")

    consumer.commit = overtaken  # type: ignore[method-assign]
    await w._finish(asyncio.create_task(done()), at(p0=10, p1=7), wait=True)
    assert w._uncommitted == {}


async def test_an_idle_consumer_commits_up_to_its_positions_after_a_commit_a_rebalance_overtook() -> None:
    """Found by the chaos suite (zombie_relay): a commit overtaken by a rebalance was dropped,
    the partition stayed with the same member at the position past the applied records, and
    nothing replayed them, so the group's lag never went back to zero. Idle, the consumer
    commits its positions (everything before them is applied by then)."""
    consumer = RecordingConsumer()
    w = wrapper(consumer, interval=0.0)

    async def overtaken(offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        raise CommitFailedError("the group has already rebalanced")

    recording = consumer.commit
    consumer.commit = overtaken  # type: ignore[method-assign]
    await w._finish(asyncio.create_task(done()), at(p0=16), wait=True)
    consumer.commit = recording  # type: ignore[method-assign]
    consumer.positions = {P0: 16, P1: 0}
    await w._settle_positions()
    await w._commit_offsets(force=True)
    assert w._committing is not None
    await w._committing
    assert consumer.commits == [{P0: 16, P1: 0}]
    w._settled_at = 0.0
    await w._settle_positions()
    assert w._uncommitted == {}, "nothing new: no second commit"
