"""Conduct reports and transfer recommendations through the real broker and database: validation
and answers on the feedback topic, the recommendation on the warning topic and in the designating
unit's inbox, and what closes it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.calendar import WorkingDayCalendar
from credit_common.clock import SHANGHAI
from credit_common.messaging import topics
from credit_common.outcomes import derived_id, request_key
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files
from credit_common.settings import Settings

from services.warning.domain import recommendation_id
from tests.support.collector import Collector
from tests.support.events import company, created, person, poll, publish, removed
from tests.support.processes import ServiceProcess
from tests.support.subjects import wrong_check

from .conftest import (
    caught_up,
    conduct_report,
    record,
    report,
)

pytestmark = pytest.mark.integration

CATALOG = Catalog.of(load_files([Path(__file__).resolve().parents[3] / "deploy" / "catalog"]))
CALENDAR = WorkingDayCalendar(CATALOG.calendars())


def recommended_for(collector: Collector, report_id: str) -> list[dict[str, Any]]:
    return collector.where(
        topics.WARNING_EVENTS,
        lambda e: e["type"] == "credit.transfer.recommended" and e["data"]["conduct_report_id"] == report_id,
    )


async def transfers(http: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await http.get("/v1/transfers", params=params)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()["transfers"]
    return body


# ---------------------------------------------------------------------- rejections


def _unknown_unit() -> dict[str, Any]:
    return conduct_report(company(), "taxation", unit="999999-NOPE")


def _inactive_unit() -> dict[str, Any]:
    return conduct_report(company(), "food_drug", unit="100000-CFDA")


def _bad_checksum() -> dict[str, Any]:
    subject = company()
    return conduct_report({**subject, "id": wrong_check(subject["id"])}, "taxation")


def _scheme_of_another_kind() -> dict[str, Any]:
    return conduct_report({**company(), "kind": "natural_person"}, "taxation")


def _unknown_field() -> dict[str, Any]:
    return conduct_report(company(), "astrology")


def _field_of_another_unit() -> dict[str, Any]:
    return conduct_report(company(), "customs", unit="110000-SAT")


def _missing_seriousness() -> dict[str, Any]:
    ev = conduct_report(company(), "taxation")
    del ev["data"]["serious"]
    return ev


def _misspelt_field() -> dict[str, Any]:
    return conduct_report(company(), "taxation", sereous=True)


def _not_a_request_type() -> dict[str, Any]:
    return {**conduct_report(company(), "taxation"), "type": "credit.conduct.gossip"}


def _all_at_once() -> dict[str, Any]:
    subject = person()
    return conduct_report({**subject, "id": wrong_check(subject["id"])}, "astrology", unit="999999-NOPE")


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (_unknown_unit, {("unknown_unit", "source")}),
        (_inactive_unit, {("unit_inactive", "source")}),
        (_bad_checksum, {("invalid_checksum", "subject.id")}),
        (_scheme_of_another_kind, {("invalid_identifier", "subject.id")}),
        (_unknown_field, {("unknown_field", "field")}),
        (_field_of_another_unit, {("field_not_authorised", "field")}),
        (_missing_seriousness, {("schema_violation", "serious")}),
        (_misspelt_field, {("schema_violation", "sereous")}),
        (_not_a_request_type, {("schema_violation", "type")}),
        (
            _all_at_once,
            {("unknown_unit", "source"), ("invalid_checksum", "subject.id"), ("unknown_field", "field")},
        ),
    ],
)
async def test_a_bad_conduct_report_is_rejected_with_its_codes(
    warning: ServiceProcess, kafka: AIOKafkaProducer, collector: Collector, build: Any, expected: set[Any]
) -> None:
    ev = build()
    answer = await report(kafka, collector, ev)
    assert answer["type"] == "credit.request.rejected"
    assert answer["data"]["request_id"] == ev["id"]
    assert {(e["code"], e["field"]) for e in answer["data"]["errors"]} == expected
    assert all(e["message"] for e in answer["data"]["errors"])
    assert answer["id"] == derived_id(request_key(ev["source"], ev["id"]), "warning", "answer")


# ---------------------------------------------------------------------- recommendations


async def test_a_serious_report_recommends_a_transfer_to_the_designating_unit(
    stack: Settings,
    warning: ServiceProcess,
    kafka: AIOKafkaProducer,
    collector: Collector,
    http: httpx.AsyncClient,
) -> None:
    subject = company()
    sid = subject["id"]
    entry = record(subject, "taxation", unit="110108-SAT")
    other = record(subject, "customs", unit="100000-GAC")
    for rec in (entry, other):
        await publish(kafka, created(rec))

    # Not serious, serious in a field without an entry, or serious but before the entry's period
    # began (what put the subject under scrutiny): accepted, nothing recommended.
    before = (date.fromisoformat(entry["effective_from"]) - timedelta(days=1)).isoformat()
    for ev in (
        conduct_report(subject, "taxation", serious=False),
        conduct_report(subject, "environment", unit="110000-MEE"),
        conduct_report(subject, "taxation", occurred_on=before),
    ):
        answer = await report(kafka, collector, ev)
        assert answer["type"] == "credit.request.accepted"
        assert answer["data"]["result_id"] == ev["id"]
        await caught_up(stack)
        assert recommended_for(collector, ev["id"]) == []

    serious = conduct_report({**subject, "id": sid.lower()}, "taxation", unit="110000-SAT")
    answer = await report(kafka, collector, serious)
    assert answer["type"] == "credit.request.accepted"
    (rec,) = await collector.wait_for(
        topics.WARNING_EVENTS,
        lambda e: e["type"] == "credit.transfer.recommended" and e["data"]["conduct_report_id"] == serious["id"],
    )
    report_day = datetime.fromisoformat(serious["time"]).astimezone(SHANGHAI).date()
    transfer = {
        "recommendation_id": recommendation_id(serious["id"], entry["designation_id"]),
        "subject": subject,
        "designation_id": entry["designation_id"],
        "unit": "110108-SAT",
        "conduct_report_id": serious["id"],
        "due_on": CALENDAR.add_working_days(report_day, 5).isoformat(),
    }
    assert rec["data"] == transfer
    assert rec["_key"] == rec["subject"] == sid
    assert rec["source"] == "platform/warning"
    assert rec["id"] == derived_id(
        request_key(serious["source"], serious["id"]), "warning", "credit.transfer.recommended", 0
    )
    # The platform's own time of receipt, not the report's claim (a moment before it, here).
    delay = datetime.fromisoformat(rec["time"]) - datetime.fromisoformat(serious["time"])
    assert timedelta(0) <= delay < timedelta(minutes=1)
    (inbox,) = await collector.wait_for(
        topics.UNIT_INBOX,
        lambda e: e["type"] == "credit.inbox.transfer" and e["data"]["transfer"]["conduct_report_id"] == serious["id"],
    )
    assert inbox["_key"] == "110108-SAT"
    assert inbox["data"] == {"transfer": transfer, "designation": entry}

    (row,) = await transfers(http, subject=sid)
    assert row["status"] == "open"
    assert row["recommendation_id"] == transfer["recommendation_id"]
    assert row["due_on"] == transfer["due_on"]
    assert row["field"] == "taxation"
    assert [r["recommendation_id"] for r in await transfers(http, status="open", unit="110108-SAT", subject=sid)] == [
        transfer["recommendation_id"]
    ]

    # A second serious report while it is pending: accepted, the unit has the recommendation already.
    again = conduct_report(subject, "taxation")
    assert (await report(kafka, collector, again))["type"] == "credit.request.accepted"
    await caught_up(stack)
    assert recommended_for(collector, again["id"]) == []

    # The entry leaves its list (revoked): the recommendation is closed; no event says so.
    revoked = removed(entry, "revoked")
    await publish(kafka, revoked)

    async def closed() -> list[dict[str, Any]]:
        return await transfers(http, subject=sid, status="closed")

    (done,) = await poll(closed)
    assert done["closed_reason"] == "revoked"
    assert done["closed_by"] == revoked["id"]
    assert done["closed_at"] is not None
    assert await transfers(http, subject=sid, status="open") == []


async def test_a_black_designation_transferring_the_entry_closes_the_recommendation(
    stack: Settings, warning: ServiceProcess, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient
) -> None:
    subject = person()
    sid = subject["id"]
    entry = record(subject, "work_safety", unit="310115-MEM")
    await publish(kafka, created(entry))
    serious = conduct_report(subject, "work_safety", unit="310000-MEM")
    assert (await report(kafka, collector, serious))["type"] == "credit.request.accepted"
    await collector.wait_for(topics.WARNING_EVENTS, lambda e: e["data"].get("conduct_report_id") == serious["id"])

    black = record(subject, "work_safety", list_="black", unit="310115-MEM", transfer_from=entry["designation_id"])
    await publish(kafka, created(black))

    async def closed() -> list[dict[str, Any]]:
        return await transfers(http, subject=sid, status="closed")

    (done,) = await poll(closed)
    assert done["closed_reason"] == "transferred"
    assert done["closed_by"] == black["designation_id"]
    # The removal (transferred) that follows finds nothing left to close.
    await publish(kafka, removed(entry, "transferred", related_id=black["designation_id"]))
    await caught_up(stack)
    (still,) = await transfers(http, subject=sid)
    assert still["closed_by"] == black["designation_id"]


async def test_transfers_are_paged_with_an_opaque_cursor(
    warning: ServiceProcess, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient
) -> None:
    subject = company()
    sid = subject["id"]
    units = ["110108-SAT", "110000-SAT", "100000-SAT"]
    entries = [record(subject, "taxation", unit=u) for u in units]
    for rec in entries:
        await publish(kafka, created(rec))
    serious = conduct_report(subject, "taxation", at=datetime.now(UTC))
    assert (await report(kafka, collector, serious))["type"] == "credit.request.accepted"
    await collector.wait_for(
        topics.WARNING_EVENTS, lambda e: e["data"].get("conduct_report_id") == serious["id"], count=3
    )
    seen: list[str] = []
    cursor = None
    first_cursor = None
    while True:
        params: dict[str, Any] = {"subject": sid, "limit": 1}
        if cursor:
            params["cursor"] = cursor
        body = (await http.get("/v1/transfers", params=params)).json()
        seen.extend(t["recommendation_id"] for t in body["transfers"])
        cursor = body["next_cursor"]
        first_cursor = first_cursor or cursor
        if cursor is None:
            break
    assert seen == sorted(recommendation_id(serious["id"], e["designation_id"]) for e in entries)
    # A cursor is good only for the filters it was made for.
    wrong = await http.get("/v1/transfers", params={"subject": company()["id"], "cursor": first_cursor})
    assert wrong.status_code == 400
    assert wrong.headers["content-type"].startswith("application/problem+json")
