"""Enforcement reports through the real service: every check with its error code on the feedback
topic, the recorded case on `credit.cases.events.v1`, the HTTP reads, and bad input that never
stops the consumer."""

from __future__ import annotations

from datetime import timedelta

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.contracts.envelope import new_id
from credit_common.messaging import topics
from credit_common.outcomes import derived_id, request_key
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import at_noon, company, person, publish, record, removed, today
from tests.support.processes import ServiceProcess

from .conftest import (
    accepted,
    caught_up,
    designated,
    objection_event,
    recorded,
    rejected,
    report,
)

pytestmark = pytest.mark.integration


async def test_a_punishment_on_a_company_is_recorded_and_announced(
    cases: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient
) -> None:
    # Black-listed for taxation in Beijing; Guangdong customs applies the MOU's inspection measure.
    rec = record(company(), list_="black", field="taxation", unit="110108-SAT")
    await designated(kafka, rec)
    await caught_up(stack)
    day = today() - timedelta(days=3)
    ev = report(rec, "440000-GAC", "tax-black-customs-inspection", day, typical=True, media=2)
    await accepted(kafka, collector, ev)

    case = await recorded(collector, ev["id"])
    sid = rec["subject"]["id"]
    assert case["data"] == {
        "case_id": ev["id"],
        "designation_id": rec["designation_id"],
        "subject": rec["subject"],
        "list": "black",
        "field": "taxation",
        "measure": "tax-black-customs-inspection",
        "measure_kind": "punishment",
        "unit": "440000-GAC",
        "province": "440000",  # the reporting unit's province, not the designating unit's
        "applied_on": day.isoformat(),
        "typical": True,
        "media_reported": True,
    }
    assert case["_key"] == case["subject"] == sid
    assert case["source"] == "platform/cases"
    assert case["id"] == derived_id(request_key(ev["source"], ev["id"]), "cases", "credit.case.recorded")
    assert case["causationid"] == ev["id"]

    body = (await http.get(f"/v1/cases/{ev['id']}")).json()
    assert body["mou"] == "mou-2014-major-tax-violations"
    assert body["reported_by"] == "unit/440000-GAC"
    assert len(body["media"]) == 2
    listed = (
        await http.get(
            "/v1/cases",
            params={"province": "440000", "measure": "tax-black-customs-inspection", "year": day.year, "limit": 1000},
        )
    ).json()
    assert ev["id"] in {c["case_id"] for c in listed["cases"]}
    assert (await http.get(f"/v1/cases/{new_id()}")).status_code == 404


async def test_a_reward_on_a_natural_person_is_public_only_masked(
    cases: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient
) -> None:
    someone = person("Wang Fang")
    rec = record(someone, list_="red", field="taxation", unit="110000-SAT")
    await designated(kafka, rec)
    await caught_up(stack)
    ev = report(rec, "110105-SAMR", "tax-red-green-channel", today(), typical=True)
    await accepted(kafka, collector, ev)
    case = await recorded(collector, ev["id"])
    assert case["data"]["measure_kind"] == "reward"
    assert case["data"]["province"] == "110000"
    assert case["data"]["media_reported"] is False

    async def typical_page() -> list[dict]:
        out, cursor = [], None
        while True:
            params = {"limit": 200, "year": today().year, **({"cursor": cursor} if cursor else {})}
            page = (await http.get("/v1/cases/typical", params=params)).json()
            out += page["cases"]
            if not (cursor := page["next_cursor"]):
                return out

    (shown,) = [c for c in await typical_page() if c["case_id"] == ev["id"]]
    masked = someone["id"][:6] + "********" + someone["id"][-4:]
    assert shown["subject"]["id"] == masked
    assert someone["id"] not in orjson.dumps(await typical_page()).decode()
    assert shown["unit_name"] == "Chaoyang District Administration for Market Regulation, Beijing"
    assert shown["measure_description"].startswith("Green channel")
    assert "decision" not in shown
    assert "facts" not in orjson.dumps(shown).decode()

    # A typical case on an entry of a non-public standard is recorded but never shown publicly.
    hidden = record(company(), list_="key_scrutiny", field="labour_social_security", unit="440000-MOHRSS", public=False)
    await designated(kafka, hidden)
    await caught_up(stack)
    secret = report(hidden, "440000-MOHRSS", "wage-ks-more-inspections", today(), typical=True)
    await accepted(kafka, collector, secret)
    await recorded(collector, secret["id"])
    assert secret["id"] not in {c["case_id"] for c in await typical_page()}
    assert (await http.get(f"/v1/cases/{secret['id']}")).json()["typical"] is True


async def test_every_check_with_its_code(
    cases: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient
) -> None:
    black = record(company(), list_="black", field="taxation", unit="110108-SAT")
    food_red = record(company(), list_="red", field="food_drug", unit="110000-SAMR")
    start = today() - timedelta(days=30)
    fresh = record(
        company(), list_="black", field="court_enforcement", unit="440106-SPC", effective_from=start, days=10
    )
    await designated(kafka, black, food_red, fresh)
    await caught_up(stack)
    day = today() - timedelta(days=1)

    # The reporting unit: known, active, a unit at all.
    assert await rejected(kafka, collector, report(black, "999999-NONE", "tax-black-customs-inspection", day)) == [
        ("unknown_unit", "source")
    ]
    portal = report(black, "440000-GAC", "tax-black-customs-inspection", day, source="portal")
    assert await rejected(kafka, collector, portal) == [("unknown_unit", "source")]
    assert await rejected(kafka, collector, report(food_red, "100000-CFDA", "food-red-fewer-inspections", day)) == [
        ("unit_inactive", "source")
    ]
    # The designation and the measure exist.
    ghost = {**black, "designation_id": new_id()}
    assert await rejected(kafka, collector, report(ghost, "440000-GAC", "tax-black-customs-inspection", day)) == [
        ("unknown_designation", "designation_id")
    ]
    assert await rejected(kafka, collector, report(black, "440000-GAC", "no-such-measure", day)) == [
        ("unknown_measure", "measure")
    ]
    # The measure's MOU covers the entry's list and field.
    assert await rejected(kafka, collector, report(black, "110108-SAT", "tax-red-green-channel", day)) == [
        ("measure_not_applicable", "measure")  # a red-list reward on a black entry
    ]
    assert await rejected(kafka, collector, report(black, "440000-MOT", "court-black-high-consumption", day)) == [
        ("measure_not_applicable", "measure")  # the court MOU does not cover taxation
    ]
    # The reporting unit implements the measure.
    assert await rejected(kafka, collector, report(black, "110108-SAT", "tax-black-customs-inspection", day)) == [
        ("not_implementing_unit", "measure")
    ]
    # The entry was on its list on applied_on: not before it, not after it ended; and applied_on
    # is not after the day the platform received the report (contracts.md, Integrity rules).
    assert await rejected(
        kafka, collector, report(fresh, "440106-SPC", "court-black-high-consumption", start - timedelta(days=1))
    ) == [("designation_not_active_on_date", "applied_on")]
    assert await rejected(
        kafka, collector, report(fresh, "440106-SPC", "court-black-high-consumption", start + timedelta(days=11))
    ) == [("designation_not_active_on_date", "applied_on")]
    future = report(black, "440000-GAC", "tax-black-customs-inspection", today() + timedelta(days=1))
    assert await rejected(kafka, collector, future) == [("invalid_date", "applied_on")]  # after the day of receipt
    # Several rules broken at once: every one is answered.
    assert sorted(await rejected(kafka, collector, report(ghost, "100000-CFDA", "no-such-measure", day))) == [
        ("unit_inactive", "source"),
        ("unknown_designation", "designation_id"),
        ("unknown_measure", "measure"),
    ]
    # A malformed report: schema_violation, with the field.
    bad = report(black, "440000-GAC", "tax-black-customs-inspection", day)
    del bad["data"]["measure"]
    assert await rejected(kafka, collector, bad) == [("schema_violation", "measure")]

    # Removed on a day: cases applied before that day stand, from that day on they are refused.
    await accepted(
        kafka, collector, report(fresh, "440106-SPC", "court-black-high-consumption", start + timedelta(days=2))
    )
    await publish(kafka, removed(fresh, "revoked", at=at_noon(start + timedelta(days=5))))
    await caught_up(stack)
    await accepted(
        kafka, collector, report(fresh, "440000-MOT", "court-black-high-consumption", start + timedelta(days=4))
    )
    assert await rejected(
        kafka, collector, report(fresh, "440000-MOT", "court-black-high-consumption", start + timedelta(days=5))
    ) == [("designation_not_active_on_date", "applied_on")]


async def test_no_punishment_while_an_objection_is_open(
    cases: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient
) -> None:
    black = record(company(), list_="black", field="taxation", unit="110108-SAT")
    red = record(company(), list_="red", field="taxation", unit="110000-SAT")
    escalated = record(company(), list_="black", field="taxation", unit="110108-SAT")
    await designated(kafka, black, red, escalated)
    oid, red_oid = new_id(), new_id()
    await publish(kafka, objection_event("credit.objection.opened", black, oid), topics.OBJECTION_EVENTS)
    await publish(kafka, objection_event("credit.objection.opened", red, red_oid), topics.OBJECTION_EVENTS)
    await caught_up(stack)
    day = today()

    punish = report(black, "440000-GAC", "tax-black-customs-inspection", day)
    assert await rejected(kafka, collector, punish) == [("suspended_under_objection", "designation_id")]
    # Escalated (overdue) is still open.
    overdue = objection_event("credit.objection.overdue", black, oid, escalated_to="110000-SAT")
    await publish(kafka, overdue, topics.OBJECTION_EVENTS)
    await caught_up(stack)
    assert await rejected(
        kafka, collector, report(black, "110105-SAMR", "tax-black-legal-representative-ban", day)
    ) == [("suspended_under_objection", "designation_id")]
    # An objection first seen overdue (escalated) suspends as well.
    late = objection_event("credit.objection.overdue", escalated, new_id(), escalated_to="110000-SAT")
    await publish(kafka, late, topics.OBJECTION_EVENTS)
    await caught_up(stack)
    assert await rejected(kafka, collector, report(escalated, "440000-GAC", "tax-black-customs-inspection", day)) == [
        ("suspended_under_objection", "designation_id")
    ]
    # Rewards are not suspended by an objection.
    await accepted(kafka, collector, report(red, "110105-SAMR", "tax-red-green-channel", day))
    # Once decided, punishment goes ahead.
    await publish(kafka, objection_event("credit.objection.resolved", black, oid), topics.OBJECTION_EVENTS)
    await caught_up(stack)
    await accepted(kafka, collector, report(black, "440000-GAC", "tax-black-customs-inspection", day))

    stats = (await http.get("/v1/stats")).json()["counts"]
    assert stats["objections"]["open"] >= 1  # the red entry's


async def test_bad_input_never_stops_the_consumer(
    cases: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, collector: Collector
) -> None:
    dead = Collector(stack.kafka_bootstrap_servers, [topics.DEADLETTER])
    await dead.start()
    try:
        key = f"garbage-{new_id()}".encode()
        await kafka.send_and_wait(topics.ENFORCEMENT_ACTIONS, b"\xff\xfe not json", key=key)
        rec = record(company(), list_="black", field="taxation", unit="110108-SAT")
        await designated(kafka, rec)
        await caught_up(stack)
        (letter,) = await dead.wait_for(
            topics.DEADLETTER,
            lambda e: (
                e["data"]["service"] == "cases"
                and e["data"]["topic"] == topics.ENFORCEMENT_ACTIONS
                and e["_key"] == key.decode()
            ),
            timeout=30,
        )
        assert letter["data"]["value_b64"]
        # The consumer went on.
        await accepted(kafka, collector, report(rec, "440000-GAC", "tax-black-customs-inspection", today()))
    finally:
        await dead.stop()
