"""Transfer deadlines in working days, through the real service: due dates across public holidays
and weekend days made working days (chinese-calendar for 2026, the catalogue's provisional
calendar record for 2027), and the overdue timer by the platform clock (CREDIT_NOW), stamped with
the due time and escalated to the designating unit's parent."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.clock import SHANGHAI
from credit_common.messaging import topics
from credit_common.outcomes import derived_id

from services.warning.domain import recommendation_id
from tests.support.collector import Collector
from tests.support.events import company, created, publish, removed
from tests.support.processes import ServiceProcess, platform_clock_at

from .conftest import (
    INSTANCE,
    conduct_report,
    record,
    report,
)

pytestmark = pytest.mark.integration

TIME_TRAVELLER_PORT = 18113
CLERK_PORT = 18143  # an instance receiving reports while its clock (CREDIT_NOW) reads their date


async def recommend(
    kafka: AIOKafkaProducer,
    collector: Collector,
    reported_at: datetime,
    unit: str = "110108-SAT",
    *,
    received_by: ServiceProcess | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A key-scrutiny entry of `unit` and a serious conduct report about it made at `reported_at`
    (received then, by `received_by` with its clock at that time, when given): returns (entry,
    report, its credit.transfer.recommended)."""
    subject = company()
    # in force when the conduct occurred (three days before the report): a transfer is recommended
    # only for conduct within the entry's period
    day = reported_at.date()
    entry = record(
        subject, "taxation", unit=unit, effective_from=day - timedelta(days=30), effective_to=day + timedelta(days=300)
    )
    await publish(kafka, created(entry))
    ev = conduct_report(subject, "taxation", unit="110000-SAT", at=reported_at)
    if received_by is None:
        assert (await report(kafka, collector, ev))["type"] == "credit.request.accepted"
    else:  # the deadline starts at the platform's receipt, never at the report's own `time`
        async with platform_clock_at(received_by, reported_at, CLERK_PORT):
            assert (await report(kafka, collector, ev))["type"] == "credit.request.accepted"
    (rec,) = await collector.wait_for(
        topics.WARNING_EVENTS,
        lambda e: e["type"] == "credit.transfer.recommended" and e["data"]["conduct_report_id"] == ev["id"],
    )
    return entry, ev, rec


async def overdue_of(collector: Collector, rec_id: str, timeout: float = 30.0) -> tuple[dict[str, Any], dict[str, Any]]:
    (overdue,) = await collector.wait_for(
        topics.WARNING_EVENTS,
        lambda e: e["type"] == "credit.transfer.overdue" and e["data"]["recommendation_id"] == rec_id,
        timeout=timeout,
    )
    (escalation,) = await collector.wait_for(
        topics.UNIT_INBOX,
        lambda e: e["type"] == "credit.inbox.escalation" and e["data"]["item_id"] == rec_id,
        timeout=timeout,
    )
    return overdue, escalation


async def test_national_day_and_a_working_saturday_2026_then_overdue_and_escalated(
    warning: ServiceProcess, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient
) -> None:
    """Reported Wed 30 Sep 2026: Thu 1 Oct to Wed 7 Oct are off, Sat 10 Oct is worked, so five
    working days are 30 Sep +: 8, 9, 10, 12, 13 Oct. That is long past by the real clock: the
    timer makes it overdue at once, stamped 14 Oct 00:00 Shanghai, escalated to 110000-SAT."""
    entry, ev, rec = await recommend(
        kafka, collector, datetime(2026, 9, 30, 10, 0, tzinfo=SHANGHAI), received_by=warning
    )
    assert rec["data"]["due_on"] == "2026-10-13"
    rec_id = rec["data"]["recommendation_id"]
    assert rec_id == recommendation_id(ev["id"], entry["designation_id"])

    overdue, escalation = await overdue_of(collector, rec_id)
    due_time = datetime(2026, 10, 14, tzinfo=SHANGHAI)
    assert overdue["data"] == {
        "recommendation_id": rec_id,
        "designation_id": entry["designation_id"],
        "unit": "110108-SAT",
        "escalated_to": "110000-SAT",
        "due_on": "2026-10-13",
    }
    assert datetime.fromisoformat(overdue["time"]) == due_time
    assert overdue["id"] == derived_id(rec_id, "warning", "credit.transfer.overdue")
    assert overdue["_key"] == entry["subject"]["id"]
    assert escalation["_key"] == "110000-SAT"
    assert escalation["data"] == {
        "kind": "transfer",
        "item_id": rec_id,
        "unit": "110108-SAT",
        "escalated_to": "110000-SAT",
        "due_on": "2026-10-13",
        "designation": entry,
    }
    assert datetime.fromisoformat(escalation["time"]) == due_time

    (row,) = (await http.get("/v1/transfers", params={"subject": entry["subject"]["id"]})).json()["transfers"]
    assert row["status"] == "overdue"
    assert row["escalated_to"] == "110000-SAT"

    # Late is still done: the entry leaving its list closes an overdue recommendation too.
    await publish(kafka, removed(entry, "transferred"))

    async def closed() -> bool:
        rows = (await http.get("/v1/transfers", params={"subject": entry["subject"]["id"]})).json()["transfers"]
        return bool(rows[0]["status"] == "closed")

    deadline = asyncio.get_running_loop().time() + 30
    while not await closed():
        assert asyncio.get_running_loop().time() < deadline, "never closed"
        await asyncio.sleep(0.2)


async def test_a_unit_without_a_parent_is_overdue_without_an_escalation(
    warning: ServiceProcess, kafka: AIOKafkaProducer, collector: Collector
) -> None:
    """Reported Fri 18 Sep 2026 (Sun 20 Sep worked): due Thu 24 Sep; 100000-SAT has no parent."""
    _, _, rec = await recommend(
        kafka, collector, datetime(2026, 9, 18, 16, 0, tzinfo=SHANGHAI), "100000-SAT", received_by=warning
    )
    assert rec["data"]["due_on"] == "2026-09-24"
    rec_id = rec["data"]["recommendation_id"]
    (overdue,) = await collector.wait_for(
        topics.WARNING_EVENTS,
        lambda e: e["type"] == "credit.transfer.overdue" and e["data"]["recommendation_id"] == rec_id,
    )
    assert "escalated_to" not in overdue["data"]
    assert datetime.fromisoformat(overdue["time"]) == datetime(2026, 9, 25, tzinfo=SHANGHAI)
    # A later marker on the same topic: a recommendation made now, in the same unit's inbox. Once
    # it is there and the topic is read to its end, an escalation would be there too.
    _, _, marker = await recommend(kafka, collector, datetime.now(SHANGHAI), "100000-SAT")
    marker_id = marker["data"]["recommendation_id"]
    await collector.wait_for(topics.UNIT_INBOX, lambda e: e["data"]["transfer"]["recommendation_id"] == marker_id)
    await collector.settled(topics.UNIT_INBOX)
    assert not collector.where(topics.UNIT_INBOX, lambda e: e["data"].get("item_id") == rec_id)


async def test_2027_national_day_by_the_provisional_calendar_overdue_at_midnight_by_credit_now(
    warning: ServiceProcess, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient
) -> None:
    """Reported Wed 29 Sep 2027: the catalogue's 2027 record has 1-7 Oct off and Sat 9 Oct worked,
    so it is due Tue 12 Oct (30 Sep, 8, 9, 11, 12 Oct). By the real clock it is not due; a second
    process whose clock reads 23:59:30 on 12 Oct still leaves it open, and makes it overdue once
    its clock passes midnight, stamped 13 Oct 00:00 Shanghai."""
    entry, _, rec = await recommend(
        kafka, collector, datetime(2027, 9, 29, 10, 0, tzinfo=SHANGHAI), received_by=warning
    )
    assert rec["data"]["due_on"] == "2027-10-12"
    rec_id = rec["data"]["recommendation_id"]
    sid = entry["subject"]["id"]

    traveller = ServiceProcess(
        "warning",
        TIME_TRAVELLER_PORT,
        instance=INSTANCE,
        env={"CREDIT_NOW": datetime(2027, 10, 12, 23, 59, 30, tzinfo=SHANGHAI).isoformat()},
    )
    started = asyncio.get_running_loop().time()
    try:
        await traveller.start()
        async with traveller.client() as travelling:
            (row,) = (await travelling.get("/v1/transfers", params={"subject": sid})).json()["transfers"]
            if asyncio.get_running_loop().time() - started < 25:  # its clock is still before midnight
                assert row["status"] == "open"
            overdue, escalation = await overdue_of(collector, rec_id, timeout=90)
    finally:
        await traveller.stop()
    due_time = datetime(2027, 10, 13, tzinfo=SHANGHAI)
    assert datetime.fromisoformat(overdue["time"]) == due_time
    assert overdue["data"]["due_on"] == "2027-10-12"
    assert overdue["data"]["escalated_to"] == escalation["_key"] == "110000-SAT"
    (row,) = (await http.get("/v1/transfers", params={"subject": sid})).json()["transfers"]
    assert row["status"] == "overdue"
    assert datetime.fromisoformat(row["overdue_at"]) == due_time
