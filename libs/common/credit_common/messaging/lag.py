"""Consumer-group lag: how many records of its topics a group has not committed yet."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from credit_common.messaging.connection import kafka_options


class GroupLag:
    """Compares groups' committed offsets with their topics' end offsets, over one admin client
    and one group-less consumer (start it before use, stop it after).

    A partition the group never committed counts from its beginning offset: the services'
    consumers start at the earliest record (`auto_offset_reset="earliest"`)."""

    def __init__(self, bootstrap: str, *, client_id: str = "credit-lag") -> None:
        self._admin = AIOKafkaAdminClient(**kafka_options(bootstrap), client_id=client_id)
        self._consumer = AIOKafkaConsumer(**kafka_options(bootstrap), client_id=client_id, enable_auto_commit=False)
        self._partitions: dict[str, list[TopicPartition]] = {}

    async def start(self) -> None:
        await self._admin.start()
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def partitions(self, topic: str) -> list[TopicPartition]:
        """The topic's partitions (empty for a topic that does not exist)."""
        if topic not in self._partitions:
            parts = self._consumer.partitions_for_topic(topic)
            if not parts:
                await self._consumer._client.force_metadata_update()
                parts = self._consumer.partitions_for_topic(topic) or set()
            if not parts:
                return []
            self._partitions[topic] = [TopicPartition(topic, p) for p in sorted(parts)]
        return self._partitions[topic]

    async def lag(self, group: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
        """Records of `topics` not yet committed by `group`, per partition."""
        tps = [tp for topic in topics for tp in await self.partitions(topic)]
        if not tps:
            return {}
        committed = await self._admin.list_consumer_group_offsets(group)
        ends = await self._consumer.end_offsets(tps)
        starts = await self._consumer.beginning_offsets(tps)
        out = {}
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
            out[tp] = max(0, ends[tp] - done)
        return out

    async def total(self, groups: Mapping[str, Sequence[str]]) -> dict[str, int]:
        """The lag of each group of `groups` (group id -> its topics), summed over partitions."""
        return {group: sum((await self.lag(group, topics)).values()) for group, topics in groups.items()}
