"""The relay's wake-up of the leader from another instance (a NOTIFY after each commit): NOTIFYs
coalesce (one in flight) but the last commit is never left behind. Against a stand-in pool whose
NOTIFY blocks until released, so the timing is the test's, not the machine's. (The NOTIFY path
through a real leader is in tests/integration/test_outbox_relay.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

from credit_common.db.outbox import OutboxRelay


class BlockingPool:
    def __init__(self) -> None:
        self.notifies = 0
        self.release = asyncio.Event()

    async def execute(self, sql: str, *args: Any) -> str:
        assert "pg_notify" in sql
        self.notifies += 1
        await self.release.wait()
        self.release.clear()
        return "SELECT 1"


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_commit_during_a_notify_in_flight_gets_a_notify_of_its_own() -> None:
    pool = BlockingPool()
    relay = OutboxRelay(pool, producer=None, schema="toy")
    relay.wake()  # commit 1: its NOTIFY goes out and is in flight
    await settle()
    assert pool.notifies == 1
    relay.wake()  # commit 2, landing while that NOTIFY is in flight: the leader may have read before it
    relay.wake()  # commit 3: coalesces with commit 2's
    await settle()
    assert pool.notifies == 1, "one NOTIFY in flight at a time"
    pool.release.set()
    await settle()
    assert pool.notifies == 2, "the commits after the first NOTIFY got one after it"
    pool.release.set()
    await settle()
    assert pool.notifies == 2, "and only one"
    assert relay._notifying is not None
    assert relay._notifying.done()


async def test_the_leader_wakes_itself_without_a_notify() -> None:
    pool = BlockingPool()
    relay = OutboxRelay(pool, producer=None, schema="toy")
    relay.leader = True
    relay.wake()
    await settle()
    assert pool.notifies == 0
    assert relay._wake.is_set()
