"""`python -m credit_common.messaging.ready HOST:PORT`: exit 0 when the broker answers a metadata
request within a few seconds (used by deploy/stack.sh for its bounded readiness wait)."""

from __future__ import annotations

import asyncio
import sys

from aiokafka.admin import AIOKafkaAdminClient

from credit_common.messaging.connection import kafka_options


async def broker_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when the cluster answers a describe-cluster call within `timeout` seconds."""
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap), request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.describe_cluster(), timeout)
        return True
    except Exception:
        return False
    finally:
        await admin.close()


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(broker_answers(sys.argv[1])) else 1)
