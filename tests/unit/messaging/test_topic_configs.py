"""Every topic states its size and durability settings (contracts.md, Integrity rules) rather than
inheriting the broker's defaults: records over the 512 KiB a message may carry still reach a
consumer (and are answered `too_large`), and with replicas every write needs two in sync."""

from __future__ import annotations

import pytest
from credit_common.contracts.envelope import MAX_MESSAGE_BYTES
from credit_common.messaging.topics import MAX_RECORD_BYTES, TOPICS, TopicSpec


@pytest.mark.parametrize("spec", TOPICS, ids=lambda s: s.name)
def test_every_topic_sets_its_record_size_and_min_insync_replicas(spec: TopicSpec) -> None:
    single = spec.configs(1)
    replicated = spec.configs(3)
    assert int(single["max.message.bytes"]) == MAX_RECORD_BYTES > MAX_MESSAGE_BYTES
    assert single["min.insync.replicas"] == "1"
    assert replicated["min.insync.replicas"] == "2"
