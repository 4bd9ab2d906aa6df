"""Objections through the real service: every check of a filing and of a decision with its error
code on the feedback topic, the opened and resolved events, the unit's inbox item, the HTTP reads."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.clock import SHANGHAI
from credit_common.messaging import topics
from credit_common.outcomes import derived_id, request_key
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import poll, publish, removed
from tests.support.processes import ServiceProcess, platform_clock_at
from tests.support.subjects import new_uscc

from .conftest import (
    CLERK_PORT,
    accepted,
    caught_up,
    decide_objection,
    designated,
    file_objection,
    filing_time,
    inbox_item,
    one,
    record,
    rejected,
)

pytestmark = pytest.mark.integration


async def test_a_subject_objects_the_unit_is_told_and_upholds_it(
    objection: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient
) -> None:
    rec = await designated(kafka, stack, record())
    sid = rec["subject"]["id"]
    # Filed Wed 30 Sep 2026 by the portal, the identifier in lower case.
    filing = file_objection(
        rec,
        objector={"kind": "subject", "id": sid.lower(), "name": "Example Co.", "contact": "+86 10 1234 5678"},
        at=datetime(2026, 9, 30, 10, 0, tzinfo=SHANGHAI),
    )
    async with platform_clock_at(objection, filing_time(filing), CLERK_PORT):  # the deadline starts at receipt
        answer = await accepted(kafka, collector, filing)
    oid = filing["id"]
    assert answer["data"]["result_id"] == oid

    opened = await one(collector, topics.OBJECTION_EVENTS, "credit.objection.opened", "objection_id", oid)
    assert opened["data"] == {
        "objection_id": oid,
        "designation_id": rec["designation_id"],
        "unit": "110108-SAT",
        "objector": {"kind": "subject", "id": sid, "name": "Example Co.", "contact": "+86 10 1234 5678"},
        "grounds": filing["data"]["grounds"],
        "due_on": "2026-10-20",  # 10 working days across National Day, with Sat 10 Oct worked
    }
    assert opened["_key"] == opened["subject"] == sid
    assert opened["source"] == "platform/objection"
    assert opened["id"] == derived_id(request_key(filing["source"], oid), "objection", "credit.objection.opened")
    assert opened["causationid"] == oid
    # Timed by the platform's receipt (its clock read 10:00 then, plus the moment it took).
    received = datetime.fromisoformat(opened["time"]) - datetime(2026, 9, 30, 10, 0, tzinfo=SHANGHAI)
    assert timedelta(0) <= received < timedelta(minutes=1)

    item = await inbox_item(collector, "credit.inbox.objection", "objection_id", oid)
    assert item["_key"] == "110108-SAT"
    assert item["data"]["objection"] == opened["data"]
    assert item["data"]["designation"] == rec
    assert item["data"]["evidence"] == ["RECEIPT-2026-001"]

    body = (await http.get(f"/v1/objections/{oid}")).json()
    assert body["status"] in ("open", "overdue")  # 20 Oct 2026 is past by the real clock
    assert body["designation"] == rec
    assert body["objector"]["id"] == sid

    async def in_inbox() -> list[dict]:
        items = (await http.get("/v1/units/110108-SAT/inbox", params={"limit": 1000})).json()["items"]
        return [i for i in items if i["item_id"] == oid]

    (listed,) = await poll(in_inbox)
    assert (listed["kind"], listed["role"]) == ("objection", "designating_unit")

    decision = decide_objection(oid, "110108-SAT", "upheld", subject=sid)
    await accepted(kafka, collector, decision)
    resolved = await one(collector, topics.OBJECTION_EVENTS, "credit.objection.resolved", "objection_id", oid)
    assert resolved["data"] == {
        "objection_id": oid,
        "designation_id": rec["designation_id"],
        "unit": "110108-SAT",
        "outcome": "upheld",
        "reasoning": "Reviewed the evidence.",
        "decided_on": decision["data"]["decided_on"],
        "decided_by": "110108-SAT",
    }
    assert resolved["_key"] == sid
    assert resolved["causationid"] == decision["id"]

    body = (await http.get(f"/v1/objections/{oid}")).json()
    assert (body["status"], body["outcome"], body["decided_by"]) == ("resolved", "upheld", "110108-SAT")

    # Decided once: a second decision is refused.
    again = decide_objection(oid, "110108-SAT", "rejected", subject=sid)
    assert await rejected(kafka, collector, again) == [("not_active", "objection_id")]


async def test_a_unit_objects_and_the_unit_rejects_it_then_the_same_unit_may_object_again_with_new_evidence(
    objection: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector
) -> None:
    rec = await designated(kafka, stack, record())
    objector = {"kind": "unit", "id": "110000-SAMR", "name": "Beijing AMR"}
    first = file_objection(rec, source="unit/110000-SAMR", objector=objector)
    await accepted(kafka, collector, first)
    # One open objection per objector and entry; the subject may still object besides.
    assert await rejected(kafka, collector, file_objection(rec, source="unit/110000-SAMR", objector=objector)) == [
        ("duplicate_objection", "designation_id")
    ]
    await accepted(kafka, collector, file_objection(rec))
    await accepted(kafka, collector, decide_objection(first["id"], "110108-SAT", "rejected"))
    resolved = await one(collector, topics.OBJECTION_EVENTS, "credit.objection.resolved", "objection_id", first["id"])
    assert resolved["data"]["outcome"] == "rejected"
    # The same grounds again would hold the punishment off once more: refused, and nothing opens.
    same = file_objection(rec, source="unit/110000-SAMR", objector=objector)
    assert await rejected(kafka, collector, same) == [("duplicate_objection", "evidence")]
    await accepted(
        kafka, collector, file_objection(rec, source="unit/110000-SAMR", objector=objector, evidence=["NEW-1"])
    )
    assert not collector.where(
        topics.OBJECTION_EVENTS,
        lambda e: e["type"] == "credit.objection.opened" and e["data"]["objection_id"] == same["id"],
    )


async def test_filing_checks(
    objection: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector
) -> None:
    rec = await designated(kafka, stack, record())
    assert await rejected(kafka, collector, file_objection({**rec, "designation_id": "no-such-designation"})) == [
        ("unknown_designation", "designation_id")
    ]
    other = {"kind": "subject", "id": new_uscc(), "name": "Another Co."}
    assert await rejected(kafka, collector, file_objection(rec, objector=other)) == [("not_subject", "objector.id")]
    samr = {"kind": "unit", "id": "110000-SAMR", "name": "Beijing AMR"}  # filed by the portal in a unit's name
    assert await rejected(kafka, collector, file_objection(rec, objector=samr)) == [("not_subject", "objector.id")]
    unknown = {"kind": "unit", "id": "999999-NONE", "name": "Nobody"}
    assert await rejected(kafka, collector, file_objection(rec, source="unit/999999-NONE", objector=unknown)) == [
        ("unknown_unit", "objector.id")
    ]
    inactive = {"kind": "unit", "id": "100000-CFDA", "name": "CFDA"}
    assert await rejected(kafka, collector, file_objection(rec, source="unit/100000-CFDA", objector=inactive)) == [
        ("unit_inactive", "objector.id")
    ]
    bad = file_objection(rec)
    del bad["data"]["grounds"]
    assert await rejected(kafka, collector, bad) == [("schema_violation", "grounds")]

    await publish(kafka, removed(rec, "revoked"))
    await caught_up(stack)
    assert await rejected(kafka, collector, file_objection(rec)) == [("not_active", "designation_id")]


async def test_decision_checks(
    objection: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient
) -> None:
    rec = await designated(kafka, stack, record(unit="110108-SAT"))
    filing = file_objection(rec)
    await accepted(kafka, collector, filing)
    oid = filing["id"]
    assert await rejected(kafka, collector, decide_objection("no-such-objection", "110108-SAT")) == [
        ("unknown_objection", "objection_id")
    ]
    # Another unit, and the parent before the objection was escalated to it.
    assert await rejected(kafka, collector, decide_objection(oid, "440106-SAT")) == [("not_designating_unit", "source")]
    if (await http.get(f"/v1/objections/{oid}")).json()["status"] == "open":
        assert await rejected(kafka, collector, decide_objection(oid, "110000-SAT")) == [
            ("not_designating_unit", "source")
        ]
    bad = decide_objection(oid, "110108-SAT", "maybe")
    assert (await rejected(kafka, collector, bad))[0] == ("schema_violation", "outcome")
    # The portal cannot decide.
    portal = decide_objection(oid, "110108-SAT")
    portal["source"] = "portal"
    assert await rejected(kafka, collector, portal) == [("not_designating_unit", "source")]


async def test_the_entry_leaving_its_list_closes_its_objections(
    objection: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient
) -> None:
    rec = await designated(kafka, stack, record())
    filing = file_objection(rec)
    await accepted(kafka, collector, filing)
    await publish(kafka, removed(rec, "expired"))

    async def closed() -> dict | None:
        body: dict = (await http.get(f"/v1/objections/{filing['id']}")).json()
        return body if body["status"] == "closed" else None

    body = await poll(closed)
    assert body["closed_reason"] == "expired"
    assert await rejected(kafka, collector, decide_objection(filing["id"], "110108-SAT")) == [
        ("not_active", "objection_id")
    ]


async def test_http_reads(objection: ServiceProcess, http: httpx.AsyncClient) -> None:
    missing = await http.get("/v1/objections/no-such-objection")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert (await http.get("/v1/restorations/no-such-application")).status_code == 404
    assert (await http.get("/v1/units/999999-NONE/inbox")).status_code == 404
    assert (await http.get("/v1/units/110108-SAT/inbox", params={"status": "nonsense"})).status_code == 422
    assert (await http.get("/v1/units/110108-SAT/inbox", params={"cursor": "garbage!"})).status_code == 400
    page = (await http.get("/v1/units/110108-SAT/inbox", params={"limit": 1})).json()
    if page["next_cursor"]:
        other = await http.get("/v1/units/110108-SAT/inbox", params={"status": "open", "cursor": page["next_cursor"]})
        assert other.status_code == 400  # a cursor belongs to its filters
        nxt = (await http.get("/v1/units/110108-SAT/inbox", params={"limit": 1, "cursor": page["next_cursor"]})).json()
        assert nxt["items"][0]["item_id"] > page["items"][0]["item_id"]
