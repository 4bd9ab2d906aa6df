"""Every service's local copy of the reference data: rebuilt from `credit.reference.v1` at start,
then kept current by following the topic.

A plain consumer without a group: it assigns every partition of the (compacted) topic, reads it
from the beginning up to the end offsets taken at start, sets `ready`, and keeps following in a
background task. A value that cannot be parsed is logged and skipped; nothing stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from credit_common.calendar import WorkingDayCalendar
from credit_common.contracts.envelope import CloudEvent
from credit_common.contracts.reference import (
    REFERENCE_EVENT_TYPE,
    REFERENCE_SOURCE,
    ReferenceRecord,
    parse_reference_record,
)
from credit_common.messaging.connection import kafka_options
from credit_common.messaging.topics import REFERENCE
from credit_common.reference.catalog import Catalog

log = structlog.stdlib.get_logger(__name__)

#: Called with (key, record) after each upsert and (key, None) after each tombstone, during the
#: catch-up at start too (a service that was down when a standard was repealed learns it then), so
#: a listener must be idempotent. May be a coroutine function. Its exceptions are logged, not raised.
Listener = Callable[[str, ReferenceRecord | None], Awaitable[None] | None]


class ReferenceCache:
    """The reference catalogue of one process, following `credit.reference.v1`.

    `await start()` returns once the cache has caught up (unless `wait=False`; then await
    `wait_ready()` or watch `ready`). `catalog` and `calendar` are always the current view.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic: str = REFERENCE,
        client_id: str = "credit-reference-cache",
        poll_timeout_ms: int = 500,
        retry_backoff_s: float = 1.0,
        consumer_factory: Callable[[], Any] | None = None,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._client_id = client_id
        self._poll_timeout_ms = poll_timeout_ms
        self._retry_backoff_s = retry_backoff_s
        self._consumer_factory = consumer_factory or self._default_consumer
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._catalog = Catalog()
        self._calendar: WorkingDayCalendar | None = None
        self.ready = asyncio.Event()
        self.listeners: list[Listener] = []
        self.applied = 0
        self.skipped = 0

    # --- the view ------------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        """The current catalogue (complete once `ready` is set)."""
        return self._catalog

    @property
    def calendar(self) -> WorkingDayCalendar:
        """The working-day calendar: chinese-calendar with the catalogue's `calendar` records."""
        if self._calendar is None:
            self._calendar = WorkingDayCalendar(self._catalog.calendars())
        return self._calendar

    @property
    def running(self) -> bool:
        """Whether the background task is alive (for a health check)."""
        return self._task is not None and not self._task.done()

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(key, record | None)` after every change applied from now on."""
        self.listeners.append(listener)

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self, *, wait: bool = True, timeout: float | None = 120.0) -> None:
        """Connect, start reading the topic from the beginning and, with `wait`, return once
        caught up. On TimeoutError (after `timeout` seconds) the task keeps trying: call `stop()`
        to give up."""
        if self._task is not None:
            raise RuntimeError("the reference cache is already started")
        # A restart rebuilds from scratch: tombstones compacted away meanwhile must not leave ghosts.
        self._catalog, self._calendar = Catalog(), None
        self.ready.clear()
        self._consumer = self._consumer_factory()
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name=f"reference-cache:{self._topic}")
        if wait:
            await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until caught up; re-raises what stopped the background task, if it died."""
        if self.ready.is_set():
            return
        if self._task is None:
            raise RuntimeError("the reference cache is not started")
        waiter = asyncio.ensure_future(self.ready.wait())
        try:
            done, _ = await asyncio.wait({waiter, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not waiter.done():
                waiter.cancel()
        if waiter in done:
            return
        if self._task in done:
            self._task.result()  # raises what killed it
            raise RuntimeError("the reference cache stopped before it caught up")
        raise TimeoutError(
            f"reference data from {self._topic} not caught up within {timeout}s ({self.applied} records applied so far)"
        )

    async def stop(self) -> None:
        """Stop following and close the consumer. Safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # A crash was logged when it happened (and raised by wait_ready); stopping still closes.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    # --- the background task -------------------------------------------------------------------

    def _default_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **kafka_options(self._bootstrap),
            client_id=self._client_id,
            group_id=None,  # no group: every process reads the whole topic itself
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    async def _run(self) -> None:
        try:
            await self._follow()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reference cache stopped following", topic=self._topic)
            raise

    async def _follow(self) -> None:
        consumer = self._consumer
        partitions = await self._partitions()
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        log.info(
            "reference cache catching up",
            topic=self._topic,
            end_offsets={tp.partition: o for tp, o in end.items()},
        )
        while True:
            if not self.ready.is_set() and await self._caught_up(end):
                self.ready.set()
                log.info(
                    "reference cache ready",
                    topic=self._topic,
                    records=len(self._catalog),
                    applied=self.applied,
                )
            try:
                batches = await consumer.getmany(timeout_ms=self._poll_timeout_ms)
            except KafkaError as exc:
                log.warning("reference cache poll failed; retrying", topic=self._topic, error=repr(exc))
                await asyncio.sleep(self._retry_backoff_s)
                continue
            for tp, messages in batches.items():
                for message in messages:
                    await self.apply_message(message.key, message.value, partition=tp.partition, offset=message.offset)

    async def _partitions(self) -> list[TopicPartition]:
        """The topic's partitions, waiting (and saying so) until the topic exists."""
        consumer = self._consumer
        waited = 0
        while True:
            try:
                # An all-topics metadata request: unlike asking for the topic by name, it never
                # makes the broker auto-create it (uncompacted) before the CLI does.
                exists = self._topic in await consumer.topics()
            except KafkaError as exc:
                log.warning("reference cache cannot reach the broker; retrying", error=repr(exc))
                exists = False
            if exists:
                ids = consumer.partitions_for_topic(self._topic)
                if ids:
                    return [TopicPartition(self._topic, p) for p in sorted(ids)]
                # The topic appeared after the consumer started: refresh this client's metadata.
                await consumer._client.force_metadata_update()
                continue
            if waited % 30 == 0:
                log.warning(
                    "reference topic missing; waiting for it",
                    topic=self._topic,
                    hint="load the catalogue: credit-reference publish deploy/catalog",
                )
            waited += 1
            await asyncio.sleep(self._retry_backoff_s)

    async def _caught_up(self, end: dict[TopicPartition, int]) -> bool:
        for tp, offset in end.items():
            if await self._consumer.position(tp) < offset:
                return False
        return True

    async def apply_message(
        self, key: bytes | None, value: bytes | None, *, partition: int = -1, offset: int = -1
    ) -> bool:
        """Apply one message of the topic (a tombstone when `value` is None) and tell the
        listeners. A message that cannot be parsed is logged and skipped (returns False)."""
        try:
            if key is None:
                raise ValueError("message without a key")
            text_key = key.decode("utf-8")
            record = None if value is None else _decode(value)
            self._catalog.apply(text_key, record)
        except Exception as exc:
            self.skipped += 1
            log.error(
                "reference record skipped",
                topic=self._topic,
                partition=partition,
                offset=offset,
                key=key,
                error=str(exc)[:2000],
            )
            return False
        self.applied += 1
        if text_key.startswith("calendar:"):
            self._calendar = None
        for listener in list(self.listeners):
            try:
                result = listener(text_key, record)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("reference listener failed", key=text_key, listener=repr(listener))
        return True


def _decode(value: bytes) -> ReferenceRecord:
    event = CloudEvent.model_validate_json(value)
    if event.type != REFERENCE_EVENT_TYPE:
        raise ValueError(f"event type {event.type!r} on the reference topic")
    if event.source != REFERENCE_SOURCE:  # the catalogue holds the signing keys: only `reference` speaks here
        raise ValueError(f"foreign_source: {event.source!r} does not write the reference topic")
    return parse_reference_record(event.data)
