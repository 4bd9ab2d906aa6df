"""Deadlines in working days, through the real service: due dates across National Day and weekend
days made working days (chinese-calendar for 2026, the catalogue's provisional calendar record for
2027), and the overdue timer by the platform clock (CREDIT_NOW), stamped with the due time and
escalated to the designating unit's parent, which may then decide."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.clock import SHANGHAI
from credit_common.messaging import topics
from credit_common.outcomes import derived_id
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import poll
from tests.support.processes import ServiceProcess, platform_clock_at

from .conftest import (
    CLERK_PORT,
    INSTANCE,
    TIME_TRAVELLER_PORT,
    accepted,
    apply_restoration,
    decide_objection,
    designated,
    file_objection,
    first_overdue,
    one,
    record,
)

pytestmark = pytest.mark.integration
NATIONAL = "100000-SAT"


async def overdue_of(
    collector: Collector, type_: str, id_name: str, item_id: str, timeout: float = 30.0
) -> tuple[dict[str, Any], dict[str, Any]]:
    overdue = await first_overdue(collector, type_, id_name, item_id, timeout=timeout)
    first = derived_id(item_id, "objection", "credit.inbox.escalation")  # the first step's
    (escalation,) = await collector.wait_for(topics.UNIT_INBOX, lambda e: e["id"] == first, timeout=timeout)
    return overdue, escalation


async def test_national_day_2026_and_a_working_saturday_then_overdue_escalated_and_decided_by_the_parent(
    objection: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient
) -> None:
    """Filed and applied Wed 30 Sep 2026: 1-7 Oct are off, Sat 10 Oct is worked. The objection is
    due in 10 working days (20 Oct), the application in 3 (Sat 10 Oct), long past by the real
    clock: the timer makes both overdue at once, stamped the next midnight, Shanghai."""
    rec = await designated(kafka, stack, record(unit="110108-SAT"))
    at = datetime(2026, 9, 30, 10, 0, tzinfo=SHANGHAI)
    filing = file_objection(rec, at=at)
    application = apply_restoration(rec, at=at)
    async with platform_clock_at(objection, at, CLERK_PORT):  # deadlines start at the receipt
        await accepted(kafka, collector, filing)
        await accepted(kafka, collector, application)
    oid, aid = filing["id"], application["id"]

    overdue, escalation = await overdue_of(collector, "credit.objection.overdue", "objection_id", oid)
    assert overdue["data"] == {
        "objection_id": oid,
        "designation_id": rec["designation_id"],
        "unit": "110108-SAT",
        "escalated_to": "110000-SAT",
        "due_on": "2026-10-20",
    }
    assert datetime.fromisoformat(overdue["time"]) == datetime(2026, 10, 21, tzinfo=SHANGHAI)
    assert overdue["id"] == derived_id(oid, "objection", "credit.objection.overdue")
    assert overdue["_key"] == rec["subject"]["id"]
    assert escalation["_key"] == "110000-SAT"
    assert escalation["data"] == {
        "kind": "objection",
        "item_id": oid,
        "unit": "110108-SAT",
        "escalated_to": "110000-SAT",
        "due_on": "2026-10-20",
        "designation": rec,
    }
    assert datetime.fromisoformat(escalation["time"]) == datetime(2026, 10, 21, tzinfo=SHANGHAI)

    overdue, escalation = await overdue_of(collector, "credit.restoration.overdue", "application_id", aid)
    assert overdue["data"]["due_on"] == "2026-10-10"
    assert overdue["data"]["escalated_to"] == "110000-SAT"
    assert datetime.fromisoformat(overdue["time"]) == datetime(2026, 10, 11, tzinfo=SHANGHAI)
    assert escalation["data"]["kind"] == "restoration"

    # Up the chain: the parent had 10 working days of its own (22 Oct to 4 Nov) and let them
    # pass too, so the objection went to the national unit at midnight on 5 Nov; the application's
    # parent had 3 (12 to 14 Oct). The national unit is the top: the item stays with it.
    def step(type_: str, id_name: str, item_id: str) -> Any:
        return collector.wait_for(
            topics.OBJECTION_EVENTS,
            lambda e: (
                e["type"] == type_ and e["data"][id_name] == item_id and e["data"].get("escalated_to") == NATIONAL
            ),
        )

    (second,) = await step("credit.objection.overdue", "objection_id", oid)
    assert second["data"]["due_on"] == "2026-11-04"
    assert datetime.fromisoformat(second["time"]) == datetime(2026, 11, 5, tzinfo=SHANGHAI)
    assert second["id"] == derived_id(oid, "objection", "credit.objection.overdue", 2)
    (national,) = await collector.wait_for(
        topics.UNIT_INBOX, lambda e: e["data"].get("item_id") == oid and e["data"]["escalated_to"] == NATIONAL
    )
    assert national["_key"] == NATIONAL
    (second,) = await step("credit.restoration.overdue", "application_id", aid)
    assert second["data"]["due_on"] == "2026-10-14"

    body = (await http.get(f"/v1/objections/{oid}")).json()
    assert (body["status"], body["escalated_to"], body["escalations"]) == ("overdue", NATIONAL, 2)
    assert body["escalation_due_on"] is None  # nobody above the national unit
    assert datetime.fromisoformat(body["overdue_at"]) == datetime(2026, 10, 21, tzinfo=SHANGHAI)  # first overdue

    async def escalated_items() -> list[dict[str, Any]]:
        page = await http.get(f"/v1/units/{NATIONAL}/inbox", params={"status": "overdue", "limit": 1000})
        return [i for i in page.json()["items"] if i["item_id"] in (oid, aid)]

    items = await poll(escalated_items)
    assert {(i["kind"], i["role"]) for i in items} == {("objection", "escalated"), ("restoration", "escalated")}

    # Any unit of the chain it climbed may decide: here the provincial one it passed through.
    await accepted(kafka, collector, decide_objection(oid, "110000-SAT", "partially_upheld"))
    resolved = await one(collector, topics.OBJECTION_EVENTS, "credit.objection.resolved", "objection_id", oid)
    assert (resolved["data"]["outcome"], resolved["data"]["decided_by"]) == ("partially_upheld", "110000-SAT")


async def test_a_unit_without_a_parent_is_overdue_without_an_escalation(
    objection: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector
) -> None:
    """Filed Fri 18 Sep 2026 (Sun 20 Sep worked): due Fri 9 Oct, right after National Day."""
    rec = await designated(kafka, stack, record(unit="100000-SAT"))
    at = datetime(2026, 9, 18, 16, 0, tzinfo=SHANGHAI)
    filing = file_objection(rec, at=at)
    async with platform_clock_at(objection, at, CLERK_PORT):
        await accepted(kafka, collector, filing)
    overdue = await one(collector, topics.OBJECTION_EVENTS, "credit.objection.overdue", "objection_id", filing["id"])
    assert overdue["data"]["due_on"] == "2026-10-09"
    assert "escalated_to" not in overdue["data"]
    assert datetime.fromisoformat(overdue["time"]) == datetime(2026, 10, 10, tzinfo=SHANGHAI)
    # A later marker on the same topic: an objection filed now, routed to the same unit's inbox.
    # Once it is there and the topic is read to its end, an escalation would be there too.
    marker = file_objection(await designated(kafka, stack, record(unit="100000-SAT")))
    await accepted(kafka, collector, marker)
    await collector.wait_for(topics.UNIT_INBOX, lambda e: e["data"]["objection"]["objection_id"] == marker["id"])
    await collector.settled(topics.UNIT_INBOX)
    assert not collector.where(topics.UNIT_INBOX, lambda e: e["data"].get("item_id") == filing["id"])


async def test_2027_by_the_provisional_calendar_overdue_within_a_minute_of_midnight_by_credit_now(
    objection: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector
) -> None:
    """Filed Wed 29 Sep 2027: the catalogue's 2027 record has 1-7 Oct off and Sat 9 Oct worked, so
    10 working days end Tue 19 Oct (30 Sep, 8, 9, 11-15, 18, 19 Oct); applied Thu 14 Oct, 3 working
    days end the same day. By the real clock neither is due; a second process whose clock reads
    23:59:30 on 19 Oct makes both overdue once its clock passes midnight, within a minute."""
    rec = await designated(kafka, stack, record(unit="110108-SAT"))
    filed, applied = datetime(2027, 9, 29, 10, 0, tzinfo=SHANGHAI), datetime(2027, 10, 14, 9, 0, tzinfo=SHANGHAI)
    filing = file_objection(rec, at=filed)
    application = apply_restoration(rec, at=applied)
    async with platform_clock_at(objection, filed, CLERK_PORT):
        await accepted(kafka, collector, filing)
    async with platform_clock_at(objection, applied, CLERK_PORT):
        await accepted(kafka, collector, application)
    opened = await one(collector, topics.OBJECTION_EVENTS, "credit.objection.opened", "objection_id", filing["id"])
    assert opened["data"]["due_on"] == "2027-10-19"
    r_opened = await one(
        collector, topics.OBJECTION_EVENTS, "credit.restoration.opened", "application_id", application["id"]
    )
    assert (r_opened["data"]["due_on"], r_opened["data"]["notify_by"]) == ("2027-10-19", "2027-10-28")

    traveller = ServiceProcess(
        "objection",
        TIME_TRAVELLER_PORT,
        instance=INSTANCE,
        env={"CREDIT_NOW": datetime(2027, 10, 19, 23, 59, 30, tzinfo=SHANGHAI).isoformat()},
    )
    loop = asyncio.get_running_loop()
    midnight = loop.time() + 30  # the traveller's clock starts as the process does
    try:
        await traveller.start()
        async with traveller.client() as travelling:
            body = (await travelling.get(f"/v1/objections/{filing['id']}")).json()
            if loop.time() < midnight - 2:  # its clock is still before midnight
                assert body["status"] == "open"
            overdue, escalation = await overdue_of(
                collector, "credit.objection.overdue", "objection_id", filing["id"], timeout=120
            )
            r_overdue, _ = await overdue_of(
                collector, "credit.restoration.overdue", "application_id", application["id"], timeout=60
            )
            assert loop.time() - midnight < 60, "overdue later than a minute after the deadline"
    finally:
        await traveller.stop()
    due_time = datetime(2027, 10, 20, tzinfo=SHANGHAI)
    assert datetime.fromisoformat(overdue["time"]) == due_time
    assert datetime.fromisoformat(r_overdue["time"]) == due_time
    assert overdue["data"]["escalated_to"] == escalation["_key"] == "110000-SAT"
