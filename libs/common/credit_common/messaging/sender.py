"""A producer for clients that must not give up on a broker outage (the demo, the chaos load, a
department's scripts): every record is sent until the broker acknowledges it.

A send that fails is tried again after a backoff with the same bytes, so a request keeps its id
and a repeat that did land is a silent retry to the platform's inbox (same id, same digest). A
producer that failed for good (a fatal error such as `OutOfOrderSequenceNumber` after the broker
lost its producer state, or three failures in a row) is replaced by a fresh one, as the outbox
relay does. While the broker is away a fresh producer cannot start; the next failure tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

#: Failures in a row after which the producer is replaced even when each said it was retriable.
RENEW_AFTER_FAILURES = 3


class ReliableSender:
    """Sends records until acknowledged; `send` waits for the ack, `send_soon` does it in the
    background (`flush` waits for every record in hand). Start it before use, stop it after."""

    def __init__(
        self,
        factory: Callable[[], AIOKafkaProducer],
        *,
        max_backoff_s: float = 5.0,
        give_up_after_s: float | None = None,
    ) -> None:
        self._factory = factory
        self._producer: AIOKafkaProducer | None = None
        self._max_backoff = max_backoff_s
        self._give_up_after = give_up_after_s
        self._pending: set[asyncio.Task[Any]] = set()
        self._renewing = asyncio.Lock()
        self._generation = 0  # bumped on each renewal: a failure of an older producer renews nothing
        self.acked = 0
        self.retries = 0
        self.renewals = 0
        self.failed = 0  # given up (only with give_up_after_s)
        self.last_error: str | None = None

    async def start(self) -> None:
        """Start the first producer, waiting (with backoff) for the broker if it is away."""
        backoff = 0.2
        while True:
            producer = self._factory()
            try:
                await producer.start()
            except KafkaError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                with contextlib.suppress(Exception):
                    await producer.stop()
                log.warning("producer cannot start yet (retrying in %.1fs): %s", backoff, self.last_error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            self._producer = producer
            return

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Any:
        """Send one record and wait until the broker has it (its RecordMetadata)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        backoff = 0.2
        failures = 0
        while True:
            producer, generation = self._producer, self._generation
            if producer is None:
                raise RuntimeError("ReliableSender.start() was not awaited")
            try:
                fut = await producer.send(topic, value, key=key, headers=list(headers or []))
                metadata = await fut
            except KafkaError as exc:
                failures += 1
                self.retries += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self._give_up_after is not None and loop.time() - started > self._give_up_after:
                    self.failed += 1
                    raise
                if not exc.retriable or failures % RENEW_AFTER_FAILURES == 0:
                    await self._renew(generation)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            self.acked += 1
            return metadata

    def send_soon(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        done: Callable[[asyncio.Task[Any]], None] | None = None,
    ) -> asyncio.Task[Any]:
        """`send` in the background; `done` is called with the finished task."""
        task = asyncio.create_task(self.send(topic, value, key=key, headers=headers))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        if done is not None:
            task.add_done_callback(done)
        return task

    async def flush(self) -> None:
        """Wait until every record sent so far is acknowledged (or given up)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def _renew(self, generation: int) -> None:
        async with self._renewing:
            if generation != self._generation:
                return  # another send renewed it already
            fresh = self._factory()
            try:
                await fresh.start()
            except KafkaError as exc:
                with contextlib.suppress(Exception):
                    await fresh.stop()
                log.warning("a fresh producer cannot start yet: %s: %s", type(exc).__name__, exc)
                return
            old, self._producer = self._producer, fresh
            self._generation += 1
            self.renewals += 1
            log.warning("producer renewed after: %s (%d renewals)", self.last_error, self.renewals)
            if old is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(old.stop(), 5.0)

    async def stop(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*list(self._pending), return_exceptions=True)
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), 10.0)
            self._producer = None
