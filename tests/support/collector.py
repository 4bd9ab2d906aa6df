"""Follow topics in the background from their current end, indexing what arrives, so tests can
wait for an answer or an event by id with a deadline (never sleep-and-hope)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from credit_common.messaging.connection import kafka_options


class Collector:
    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)  # topic -> CloudEvents
        self.headers: dict[str, list[tuple[tuple[str, bytes], ...]]] = defaultdict(list)
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> Collector:
        self._consumer = AIOKafkaConsumer(**kafka_options(self.bootstrap), enable_auto_commit=False)
        await self._consumer.start()
        tps: list[TopicPartition] = []
        for topic in self.topics:
            parts = self._consumer.partitions_for_topic(topic)
            if not parts:
                await self._consumer._client.force_metadata_update()
                parts = self._consumer.partitions_for_topic(topic) or set()
            tps.extend(TopicPartition(topic, p) for p in sorted(parts))
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now, so nothing produced after start() is missed
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            for tp, records in batch.items():
                for r in records:
                    if r.value is None:
                        continue
                    try:
                        doc = orjson.loads(r.value)
                    except orjson.JSONDecodeError:
                        continue
                    doc["_key"] = r.key.decode("utf-8", "replace") if r.key else None
                    doc["_partition"] = r.partition
                    self.events[tp.topic].append(doc)
                    self.headers[tp.topic].append(tuple(r.headers))
            if batch:
                self._changed.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    def where(self, topic: str, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Events matching `predicate`; an event of another shape (other producers share these
        topics) is simply not a match."""
        out = []
        for e in self.events[topic]:
            try:
                if predicate(e):
                    out.append(e)
            except (KeyError, TypeError, AttributeError, IndexError):
                continue
        return out

    async def wait_for(
        self,
        topic: str,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        count: int = 1,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Wait until at least `count` events on `topic` match; returns every match."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = self.where(topic, predicate)
            if len(found) >= count:
                return found
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out: {len(found)} of {count} matching events on {topic} ({len(self.events[topic])} seen)"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    async def settled(self, topic: str, timeout: float = 30.0) -> None:
        """Wait until this collector has read `topic` up to its end as of now: whatever was on the
        topic when this was called is in `events` afterwards (a test that asserts something did
        NOT arrive first waits for a later marker, then for this)."""
        assert self._consumer is not None
        tps = [tp for tp in self._consumer.assignment() if tp.topic == topic]
        ends = await self._consumer.end_offsets(tps)
        deadline = asyncio.get_running_loop().time() + timeout
        for tp, end in ends.items():
            while await self._consumer.position(tp) < end:
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"timed out reading {topic} to its end")
                await asyncio.sleep(0.05)

    async def answer(self, request_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """The one answer to `request_id` on the feedback topic."""
        (first, *_rest) = await self.wait_for(
            "credit.feedback.v1", lambda e: e.get("data", {}).get("request_id") == request_id, timeout=timeout
        )
        return first
