"""A service's handler table driven in memory: messages in as the bus would hand them over (the
envelope, the validated data, the trusted unit), outcomes and published events out. No Kafka, no
PostgreSQL: the handlers run over the service's in-memory store (`services/<name>/memory.py`).
The handler unit tests and the demo's offline run use it; a running service never does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import asyncpg
import orjson

from credit_common.clock import ManualClock
from credit_common.contracts.envelope import CloudEvent, new_event, new_id
from credit_common.contracts.registry import model_for, topic_for
from credit_common.messaging.bus import Handlers
from credit_common.messaging.parsing import trusted_unit
from credit_common.messaging.unit_of_work import Context, Incoming
from credit_common.outcomes import Accepted, Outcome, Rejected


@dataclass(frozen=True)
class Published:
    """An event a handler put in the outbox: where it goes and what it says."""

    topic: str
    key: str | None
    type: str
    id: str
    data: dict[str, Any]
    envelope: dict[str, Any]  # the whole CloudEvent as it goes on the wire


@dataclass(frozen=True)
class Message:
    """One message to hand to the bus."""

    type: str
    data: Any
    source: str = "unit/110108-SAT"
    id: str | None = None
    time: datetime | None = None
    subject: str | None = None
    causationid: str | None = None


class Harness:
    """Hands messages to `bus` one batch at a time. `flush` runs after each batch with its unit of
    work (a service whose consumer writes in a flush hook, as designation's does)."""

    def __init__(
        self,
        bus: Handlers[Any],
        service: str,
        now: datetime,
        flush: Callable[[Context], Awaitable[None]] | None = None,
    ) -> None:
        self.bus = bus
        self.service = service
        self.clock = ManualClock(now)
        self.flush = flush
        self.published: list[Published] = []
        self._offset = 0

    async def send(self, type_: str, data: Any, **envelope: Any) -> Outcome:
        """One message in a batch of its own; its outcome."""
        (outcome,) = await self.batch([Message(type_, data, **envelope)])
        return outcome

    async def accepted(self, type_: str, data: Any, **envelope: Any) -> str:
        """Send a request that must be accepted; the id of what it created or changed."""
        outcome = await self.send(type_, data, **envelope)
        assert isinstance(outcome, Accepted), outcome
        return outcome.result_id

    async def rejected(self, type_: str, data: Any, **envelope: Any) -> list[str]:
        """Send a request that must be rejected; its error codes."""
        outcome = await self.send(type_, data, **envelope)
        assert isinstance(outcome, Rejected), outcome
        return [e.code for e in outcome.errors]

    async def batch(self, messages: Sequence[Message]) -> list[Outcome]:
        return await self.deliver([self._event(m) for m in messages])

    async def deliver(self, events: Sequence[CloudEvent], topic: str | None = None) -> list[Outcome]:
        """Hand envelopes as they came over `topic` (their type's topic by default) as one batch."""
        items = [self._incoming(e, topic) for e in events]
        ctx = Context(conn=cast(asyncpg.Connection, None), clock=self.clock, service=self.service)
        outcomes = await self.bus(items, ctx)
        if self.flush is not None:
            await self.flush(ctx)
        for m in ctx.outbox:
            assert m.value is not None
            doc = orjson.loads(m.value)
            self.published.append(
                Published(m.topic, m.key.decode() if m.key else None, doc["type"], doc["id"], doc["data"], doc)
            )
        return list(outcomes)

    def events(self, type_: str) -> list[dict[str, Any]]:
        """The data of every event of `type_` published so far, in order."""
        return [p.data for p in self.published if p.type == type_]

    def _event(self, m: Message) -> CloudEvent:
        time = m.time or self.clock.now()
        event = new_event(m.type, m.source, m.data, time=time, subject=m.subject, id=m.id or new_id())
        event.causationid = m.causationid
        return event

    def _incoming(self, event: CloudEvent, topic: str | None) -> Incoming:
        data = model_for(event.type).model_validate(event.data)
        self._offset += 1
        key = (event.subject or "").encode() or None
        return Incoming(event, data, trusted_unit(event), topic or topic_for(event.type), 0, self._offset, key, [])
