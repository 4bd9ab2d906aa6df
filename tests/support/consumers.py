"""A consumer wrapper with no broker behind it, for unit tests of its loop's parts (offset
commits, retries): the test puts its stand-ins in place of the Kafka consumer or the applier."""

from __future__ import annotations

from typing import Any

from credit_common.clock import SystemClock
from credit_common.messaging.consumer import KafkaConsumerWrapper


def toy_wrapper(**options: Any) -> KafkaConsumerWrapper:
    """`KafkaConsumerWrapper` of service and group `toy` on topic `t`, never started."""
    return KafkaConsumerWrapper(
        service="toy",
        group_id="toy",
        topics=["t"],
        bootstrap="unused:9092",
        pool=None,
        clock=SystemClock(),
        handlers={},
        **options,
    )
