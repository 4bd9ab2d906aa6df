"""The steady load under which every fault is injected: the demo's traffic (designations,
removals, amendments, objections, restoration, conduct reports, enforcement actions: every
service has work), each request signed by its unit's key and sent until the broker has it, over a
broker outage too (`ReliableSender`). Every request sent is remembered with the fault it was
sent under, for the oracle."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from credit_common.messaging import topics
from credit_common.messaging.producer import make_producer
from credit_common.messaging.sender import ReliableSender
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files
from credit_common.security.credentials import Signers
from credit_demo.traffic import Traffic

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class SentRequest:
    kind: str
    window: str


class Load:
    def __init__(self, bootstrap: str, rate: float, *, seed: int) -> None:
        catalog = Catalog.of(load_files([ROOT / "deploy" / "catalog"]))
        self.traffic = Traffic(catalog, seed=seed, malformed=0.0, settle=timedelta(seconds=3))
        self.sender = ReliableSender(lambda: make_producer(bootstrap, "credit-chaos-load"))
        self.signers = Signers()
        self.rate = rate
        self.sent: dict[str, SentRequest] = {}
        self.window = "warmup"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.sender.start()

    def send_one(self) -> None:
        msg = self.traffic.next(datetime.now(UTC))
        value = self.signers.sign_bytes(msg.value) if msg.topic in topics.REQUEST_TOPICS else msg.value
        self.sent[msg.id] = SentRequest(msg.kind, self.window)
        self.sender.send_soon(msg.topic, value, key=msg.key, headers=msg.headers)

    def burst(self, n: int) -> None:
        """n requests at once: a batch in hand for the service about to be hit."""
        for _ in range(n):
            self.send_one()

    def steady(self) -> None:
        """Start sending at `rate` per second (until `hold`)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="chaos-load")

    async def hold(self) -> None:
        """Stop sending new requests (those in hand are still sent until the broker has them)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start, n = loop.time(), 0
        while True:
            due = int((loop.time() - start) * self.rate) + 1
            while n < due:
                self.send_one()
                n += 1
            await asyncio.sleep(max(0.0, start + n / self.rate - loop.time()))

    def of(self, window: str) -> dict[str, str]:
        """The requests sent under `window`: id -> request type."""
        return {rid: s.kind for rid, s in self.sent.items() if s.window == window}

    async def stop(self) -> None:
        await self.hold()
        await self.sender.stop()
