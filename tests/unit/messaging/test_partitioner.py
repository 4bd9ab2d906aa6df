"""The cached partitioner chooses exactly what Kafka's default (murmur2) partitioner chooses."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from credit_common.messaging.producer import cached_partitioner
from hypothesis import given
from hypothesis import strategies as st


@given(key=st.binary(min_size=1, max_size=64), n=st.integers(min_value=1, max_value=64))
def test_same_partition_as_the_default_partitioner(key: bytes, n: int) -> None:
    partitions = list(range(n))
    assert cached_partitioner(key, partitions, partitions) == DefaultPartitioner()(key, partitions, partitions)
    assert cached_partitioner(key, partitions, partitions) == cached_partitioner(key, partitions, partitions)


def test_no_key_picks_an_available_partition() -> None:
    assert cached_partitioner(None, [0, 1, 2], [2]) == 2
