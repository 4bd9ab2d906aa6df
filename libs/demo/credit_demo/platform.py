"""The platform in memory: the services' own handler tables over their memory stores, wired by
topic as the broker wires them. A request goes to the service that answers it, and every event a
service publishes goes, in order and before the next request, to each service that reads its
topic. No Kafka, no PostgreSQL, and no model of the services but the services themselves."""

from __future__ import annotations

from collections import Counter, deque
from datetime import datetime

from credit_common.contracts.envelope import CloudEvent
from credit_common.contracts.registry import topic_for
from credit_common.deps import StaticDeps
from credit_common.messaging import topics
from credit_common.messaging.memory import Harness
from credit_common.messaging.unit_of_work import Context
from credit_common.outcomes import Accepted, Outcome, Rejected
from credit_common.reference.catalog import Catalog

from services.cases.handlers import CasesHandlers
from services.cases.memory import MemoryStore as CasesMemory
from services.designation.handlers import DesignationHandlers, flush_batch
from services.designation.memory import MemoryStore as DesignationMemory
from services.objection.handlers import ObjectionHandlers
from services.objection.memory import MemoryStore as ObjectionMemory
from services.sharing.handlers import SharingHandlers
from services.sharing.memory import MemoryStore as SharingMemory
from services.warning.handlers import WarningHandlers
from services.warning.memory import MemoryStore as WarningMemory

# Which services read which topic (their consumers' subscriptions; the reference topic aside).
READERS: dict[str, tuple[str, ...]] = {
    topics.DESIGNATION_REQUESTS: ("designation",),
    topics.OBJECTION_REQUESTS: ("objection",),
    topics.CONDUCT_REPORTS: ("warning",),
    topics.ENFORCEMENT_ACTIONS: ("cases",),
    topics.DESIGNATION_EVENTS: ("sharing", "warning", "objection", "cases"),
    topics.OBJECTION_EVENTS: ("designation", "sharing", "cases"),
    topics.WARNING_EVENTS: ("sharing",),
}


class InMemoryPlatform:
    """The five services in memory. `accepted` counts accepted requests by type, `rejected` the
    rejections by (type, code); `answers` has every request's outcome by request id."""

    def __init__(self, catalog: Catalog, now: datetime) -> None:
        self.designation_store = DesignationMemory()
        self.objection_store = ObjectionMemory()
        self.warning_store = WarningMemory()
        self.cases_store = CasesMemory()
        self.sharing_store = SharingMemory()

        def deps(name: str) -> StaticDeps:
            return StaticDeps.of(name, catalog)

        async def designation_flush(ctx: Context) -> None:
            await flush_batch(ctx.conn, ctx, self.designation_store)

        self.services: dict[str, Harness] = {
            "designation": Harness(
                DesignationHandlers(deps("designation"), store_for=lambda ctx: self.designation_store).bus(),
                "designation",
                now,
                flush=designation_flush,
            ),
            "objection": Harness(
                ObjectionHandlers(deps("objection"), store_for=lambda ctx: self.objection_store).bus(),
                "objection",
                now,
            ),
            "warning": Harness(
                WarningHandlers(
                    deps("warning"), threshold=3, due_working_days=5, store_for=lambda ctx: self.warning_store
                ).bus(),
                "warning",
                now,
            ),
            "cases": Harness(CasesHandlers(deps("cases"), store_for=lambda ctx: self.cases_store).bus(), "cases", now),
            "sharing": Harness(
                SharingHandlers(deps("sharing"), store_for=lambda ctx: self.sharing_store).bus(), "sharing", now
            ),
        }
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[tuple[str, str]] = Counter()
        self.answers: dict[str, Outcome] = {}

    async def handle(self, request: CloudEvent) -> Outcome:
        """One request through its service, then every event that follows from it, in order."""
        (owner,) = READERS[topic_for(request.type)]
        outcome = await self._deliver(owner, request, topic_for(request.type))
        self.answers[request.id] = outcome
        if isinstance(outcome, Rejected):
            for e in outcome.errors:
                self.rejected[(request.type, e.code)] += 1
        elif isinstance(outcome, Accepted):
            self.accepted[request.type] += 1
        return outcome

    async def _deliver(self, service: str, event: CloudEvent, topic: str) -> Outcome:
        pending: deque[tuple[str, CloudEvent, str]] = deque([(service, event, topic)])
        first: Outcome = None
        is_first = True
        while pending:
            name, ev, on = pending.popleft()
            harness = self.services[name]
            seen = len(harness.published)
            (outcome,) = await harness.deliver([ev], on)
            if is_first:
                first, is_first = outcome, False
            for p in harness.published[seen:]:
                for reader in READERS.get(p.topic, ()):
                    pending.append((reader, CloudEvent.model_validate(p.envelope), p.topic))
        return first
