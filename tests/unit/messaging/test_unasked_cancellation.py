"""A CancelledError that nobody asked for (a library let one escape from an internal timeout or a
race) is a failure to retry, not a request to stop. Taken as a request to stop, it ended a
designation consumer's loop in silence during the chaos suite's database cut-off: its instance
stayed up, not ready, reading nothing. A real cancellation still stops a loop at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from credit_common.messaging.consumer import KafkaConsumerWrapper
from credit_common.tasks import unasked_cancellation

from tests.support.consumers import toy_wrapper


class FlakyApplier:
    """Raises CancelledError on its first `fails` calls, as a library's internal race would."""

    def __init__(self, fails: int) -> None:
        self.fails = fails
        self.applied = 0
        self.wrote_outbox = False

    async def apply(self, parsed: list[Any]) -> None:
        if self.fails:
            self.fails -= 1
            raise asyncio.CancelledError()
        self.applied += len(parsed)


def wrapper(applier: FlakyApplier) -> KafkaConsumerWrapper:
    w = toy_wrapper()
    w._applier = applier  # type: ignore[assignment]
    return w


async def test_a_cancellation_nobody_asked_for_is_told_apart_from_a_real_one() -> None:
    assert unasked_cancellation(asyncio.CancelledError())
    assert not unasked_cancellation(RuntimeError("not a cancellation"))
    seen: list[bool] = []

    async def cancelled() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError as exc:
            seen.append(unasked_cancellation(exc))
            raise

    task = asyncio.create_task(cancelled())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [False]


async def test_a_batch_that_meets_an_unasked_cancellation_is_applied_again() -> None:
    applier = FlakyApplier(fails=2)
    w = wrapper(applier)
    await asyncio.create_task(w._apply_durably([object(), object()]))  # type: ignore[list-item]
    assert applier.applied == 2, "retried until applied, the loop not ended"
    assert w.processed == 2
    assert w.healthy


async def test_a_real_cancellation_still_stops_a_batch() -> None:
    gate = asyncio.Event()

    class Slow(FlakyApplier):
        async def apply(self, parsed: list[Any]) -> None:
            gate.set()
            await asyncio.sleep(10)

    w = wrapper(Slow(fails=0))
    task = asyncio.create_task(w._apply_durably([object()]))  # type: ignore[list-item]
    await gate.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert w.processed == 0
