"""Credit restoration through the real service: every check of an application and of a decision
with its error code, the opened and resolved events, the unit's inbox item, the recorded measures
and their counts per unit and province."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.clock import SHANGHAI
from credit_common.messaging import topics
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import publish, removed, today
from tests.support.processes import ServiceProcess, platform_clock_at
from tests.support.subjects import new_uscc

from .conftest import (
    CLERK_PORT,
    accepted,
    apply_restoration,
    caught_up,
    decide_restoration,
    designated,
    filing_time,
    inbox_item,
    one,
    record,
    rejected,
    send,
)

pytestmark = pytest.mark.integration


async def test_an_application_is_routed_and_approved(
    objection: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient
) -> None:
    rec = await designated(kafka, stack, record())
    sid = rec["subject"]["id"]
    # Applied Wed 30 Sep 2026: due Sat 10 Oct (a working Saturday), the applicant told by 20 Oct.
    req = apply_restoration(rec, at=datetime(2026, 9, 30, 15, 0, tzinfo=SHANGHAI))
    aid = req["id"]
    async with platform_clock_at(objection, filing_time(req), CLERK_PORT):  # the deadline starts at receipt
        assert (await accepted(kafka, collector, req))["data"]["result_id"] == aid
    opened = await one(collector, topics.OBJECTION_EVENTS, "credit.restoration.opened", "application_id", aid)
    assert opened["data"] == {
        "application_id": aid,
        "designation_id": rec["designation_id"],
        "unit": "110108-SAT",
        "due_on": "2026-10-10",
        "notify_by": "2026-10-20",
    }
    assert opened["_key"] == sid
    item = await inbox_item(collector, "credit.inbox.restoration", "application_id", aid)
    assert item["_key"] == "110108-SAT"
    assert item["data"]["restoration"] == opened["data"]
    assert item["data"]["designation"] == rec
    assert [m["kind"] for m in item["data"]["measures"]] == ["obligation_performed", "restoration_training"]

    body = (await http.get(f"/v1/restorations/{aid}")).json()
    assert body["applied_on"] == "2026-09-30"
    assert body["measures"][1]["legal_representative_training"] is True
    assert body["measures"][1]["legal_representative"] == "Li Ming"

    decision = decide_restoration(aid, "110108-SAT", "approved", subject=sid)
    await accepted(kafka, collector, decision)
    resolved = await one(collector, topics.OBJECTION_EVENTS, "credit.restoration.resolved", "application_id", aid)
    assert resolved["data"] == {
        "application_id": aid,
        "designation_id": rec["designation_id"],
        "unit": "110108-SAT",
        "outcome": "approved",
        "reasoning": "The measures are sufficient.",
        "decided_on": decision["data"]["decided_on"],
        "decided_by": "110108-SAT",
    }
    assert resolved["causationid"] == decision["id"]
    assert await rejected(kafka, collector, decide_restoration(aid, "110108-SAT", "rejected")) == [
        ("not_active", "application_id")
    ]


async def test_application_checks(
    objection: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector
) -> None:
    black = await designated(kafka, stack, record())
    assert await rejected(kafka, collector, apply_restoration({**black, "designation_id": "no-such"})) == [
        ("unknown_designation", "designation_id")
    ]
    assert await rejected(kafka, collector, apply_restoration(black, applicant=new_uscc())) == [
        ("invalid_identifier", "applicant.id")
    ]
    red = await designated(kafka, stack, record(list_="red", standard="taxation-red", unit="110000-SAT"))
    assert await rejected(kafka, collector, apply_restoration(red)) == [("list_mismatch", "designation_id")]
    court = await designated(kafka, stack, record(standard="court_enforcement-black", unit="110000-SPC"))
    assert await rejected(kafka, collector, apply_restoration(court)) == [("restoration_not_allowed", "designation_id")]
    # taxation-black: 365 days on the list first.
    start = today() - timedelta(days=10)
    recent = await designated(kafka, stack, record(effective_from=start))
    answer = await send(kafka, collector, apply_restoration(recent))
    assert answer["type"] == "credit.request.rejected"
    (error,) = answer["data"]["errors"]
    assert (error["code"], error["field"]) == ("restoration_too_early", "designation_id")
    assert (start + timedelta(days=365)).isoformat() in error["message"]  # it names the earliest date
    bad = apply_restoration(black, measures=[{"kind": "prayer", "detail": "x", "completed_on": "2026-01-01"}])
    assert (await rejected(kafka, collector, bad))[0] == ("schema_violation", "measures.0.kind")

    await publish(kafka, removed(black, "revoked"))
    await caught_up(stack)
    assert await rejected(kafka, collector, apply_restoration(black)) == [("not_active", "designation_id")]


async def test_decision_checks(
    objection: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector
) -> None:
    # key scrutiny under taxation-key_scrutiny: 180 days first; on the list 200 days.
    rec = await designated(
        kafka,
        stack,
        record(list_="key_scrutiny", standard="taxation-key_scrutiny", effective_from=today() - timedelta(days=200)),
    )
    req = apply_restoration(rec)
    await accepted(kafka, collector, req)
    aid = req["id"]
    assert await rejected(kafka, collector, decide_restoration("no-such-application", "110108-SAT")) == [
        ("unknown_application", "application_id")
    ]
    assert await rejected(kafka, collector, decide_restoration(aid, "440106-SAT")) == [
        ("not_designating_unit", "source")
    ]
    # An approval dated before the minimum time is over is one the designation service would refuse.
    early = decide_restoration(aid, "110108-SAT", decided_on=today() - timedelta(days=30))
    assert await rejected(kafka, collector, early) == [("restoration_too_early", "decided_on")]
    await accepted(kafka, collector, decide_restoration(aid, "110108-SAT", "rejected"))
    resolved = await one(collector, topics.OBJECTION_EVENTS, "credit.restoration.resolved", "application_id", aid)
    assert resolved["data"]["outcome"] == "rejected"


async def test_measures_are_counted_per_unit_and_province(
    objection: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient
) -> None:
    """The counts of a unit of this test only (the record names it; the catalogue need not)."""
    unit = f"110108-T{uuid.uuid4().hex[:8].upper()}"
    black = await designated(kafka, stack, record(unit=unit))
    person = await designated(
        kafka,
        stack,
        record(
            {"kind": "natural_person", "scheme": "other", "id": f"P{uuid.uuid4().hex[:12].upper()}", "name": "Zhao"},
            unit=unit,
        ),
    )
    await accepted(kafka, collector, apply_restoration(black))
    await accepted(kafka, collector, apply_restoration(person))
    body = (await http.get("/v1/restoration-measures", params={"unit": unit})).json()
    counts = {(r["province"], r["kind"]): r for r in body["counts"]}
    assert set(counts) == {("110000", "obligation_performed"), ("110000", "restoration_training")}
    training = counts[("110000", "restoration_training")]
    assert (training["measures"], training["legal_representative_training"], training["applications"]) == (2, 1, 2)
    assert counts[("110000", "obligation_performed")]["legal_representative_training"] == 0
    by_province = (await http.get("/v1/restoration-measures", params={"province": "110000"})).json()["counts"]
    assert any(r["unit"] == unit for r in by_province)
