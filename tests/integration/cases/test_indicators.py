"""Indicators, efficacy, tallies and progress against values worked out by hand, for a fixture
that spans two provinces (Beijing 110000, Guangdong 440000) and a year boundary (Y, Y+1).

The fixture's years lie in the future and are drawn at random (and checked empty), so the figures
are this test's alone however often the suite runs against one database; the indicators are read
from a second instance whose clock (`CREDIT_NOW`) stands at 1 July of Y+1."""

from __future__ import annotations

import random
import statistics
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.clock import SHANGHAI
from credit_common.contracts.reference import FieldRecord, Liaison, Measure, MouRecord, UnitRecord
from credit_common.messaging import topics
from credit_common.reference.cli import publish_records
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import at_noon, company, poll, publish, record, removed
from tests.support.processes import ServiceProcess, platform_clock_at

from .conftest import CLERK_PORT, TIME_TRAVELLER_PORT, accepted, caught_up, designated, report

pytestmark = pytest.mark.integration


async def _fresh_year(http: httpx.AsyncClient) -> int:
    """A future year Y such that neither Y nor Y+1 has any case or designation yet."""
    rng = random.Random(uuid.uuid4().int)
    for _ in range(20):
        y = rng.randrange(2040, 2098)
        empty = True
        for year in (y, y + 1):
            (national,) = [
                s
                for s in (await http.get("/v1/indicators", params={"year": year})).json()["scopes"]
                if s["scope"] == "national"
            ]
            empty &= national["cases"] == 0 and national["red_black_designations"] == 0
        if empty:
            return y
    raise AssertionError("no empty year found")


@pytest.fixture(scope="module")
async def year(cases: ServiceProcess, http: httpx.AsyncClient) -> int:
    return await _fresh_year(http)


@pytest.fixture(scope="module")
async def later(year: int, cases: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    """A second instance in the same group, its clock at noon on 1 July of Y+1."""
    svc = cases.sibling(TIME_TRAVELLER_PORT, env={"CREDIT_NOW": f"{year + 1}-07-01T12:00:00+08:00"})
    await svc.start()
    try:
        async with svc.client() as c:
            yield c
    finally:
        await svc.stop()


def scope_of(body: dict[str, Any], province: str | None) -> dict[str, Any]:
    (found,) = [s for s in body["scopes"] if s["province"] == province]
    return found


def indicator(scope: dict[str, Any], code: str) -> dict[str, Any]:
    (found,) = [i for i in scope["indicators"] if i["code"] == code]
    return found


async def test_indicators_efficacy_and_tallies_match_the_hand_count(
    cases: ServiceProcess,
    stack: Settings,
    kafka: AIOKafkaProducer,
    collector: Collector,
    year: int,
    later: httpx.AsyncClient,
) -> None:
    y, z = year, year + 1

    def d(yy: int, month: int, day: int) -> date:
        return date(yy, month, day)

    # Designations (counted in the year of their decision, for the designating unit's province).
    b1 = record(company(), list_="black", field="taxation", unit="110108-SAT", decided_on=d(y, 3, 1))
    b4 = record(company(), list_="black", field="taxation", unit="110108-SAT", decided_on=d(y, 5, 1))
    b2 = record(company(), list_="black", field="court_enforcement", unit="440106-SPC", decided_on=d(y, 12, 20))
    k1 = record(company(), list_="key_scrutiny", field="environment", unit="440100-MEE", decided_on=d(y, 6, 1))
    r1 = record(company(), list_="red", field="taxation", unit="110000-SAT", decided_on=d(z, 1, 10))
    b3 = record(company(), list_="black", field="taxation", unit="440106-SAT", decided_on=d(z, 2, 1))
    await designated(kafka, b1, b4, b2, k1, r1, b3)
    await caught_up(stack)

    # Cases (counted in the year they were applied, for the reporting unit's province).
    media_gd = [d(z, 3, 2) + timedelta(days=i) for i in range(16)]
    media_bj = [d(z, 2, 1) + timedelta(days=i) for i in range(31)]
    reports = [
        report(b1, "440000-GAC", "tax-black-customs-inspection", d(y, 12, 31), media=1),  # GD, Y
        report(b2, "440000-MOT", "court-black-high-consumption", d(y, 12, 25), media=1),  # GD, Y
        # BJ, Y+1, reported by national and local media: kept with the case, not counted (provincial only)
        report(
            b1,
            "110105-SAMR",
            "tax-black-legal-representative-ban",
            d(z, 1, 1),
            typical=True,
            media=1,
            media_level="national",
        ),
        report(b4, "110105-SAMR", "tax-black-legal-representative-ban", d(z, 1, 5), media=2, media_level="local"),
        report(b2, "440106-SPC", "court-black-high-consumption", d(z, 3, 1)),  # GD, Y+1
        report(k1, "440100-MEE", "env-ks-more-inspections", d(z, 1, 15)),  # GD, Y+1 (key scrutiny)
        *(report(b2, "440106-SPC", "court-black-high-consumption", day, media=1) for day in media_gd),
        *(report(r1, "110000-SAMR", "tax-red-green-channel", day, media=1) for day in media_bj),
    ]
    # Received as of 1 July of Y+1 (an applied_on after the day of receipt would be invalid_date).
    async with platform_clock_at(cases, datetime(z, 7, 1, 12, 0, tzinfo=SHANGHAI), CLERK_PORT):
        for ev in reports:
            await publish(kafka, ev, topics.ENFORCEMENT_ACTIONS)
        for ev in reports:
            await accepted(kafka, collector, ev)
    # Two subjects leave the black list by restoration.
    await publish(kafka, removed(b1, "restored", at=at_noon(d(z, 4, 1))))
    await publish(kafka, removed(b4, "restored", at=at_noon(d(z, 1, 25))))
    await caught_up(stack)

    # ---- year Y, complete by the second instance's clock
    body = (await later.get("/v1/indicators", params={"year": y})).json()
    assert body["as_of"] == f"{z}-07-01"
    assert body["elapsed_fraction"] == 1.0
    national = scope_of(body, None)
    assert (national["cases"], national["media_reported_cases"], national["red_black_designations"]) == (2, 2, 3)
    assert indicator(national, "case_share") | {"title": None, "in_words": None} == {
        "code": "case_share", "title": None, "in_words": None, "target": 0.1, "value": round(2 / 3, 4),
        "projection": round(2 / 3, 4),
        "status": "met", "numerator": 2, "denominator": 3,
    }  # fmt: skip
    assert [i["code"] for i in national["indicators"]] == ["case_share"]  # the media target is a province's
    assert indicator(national, "case_share")["in_words"] == (
        f"2 enforcement cases shared nationally in {y} ÷ 3 red and black designations made nationally in {y} "
        "= 66.7% (target at least 10%; met)"
    )
    bj, gd = scope_of(body, "110000"), scope_of(body, "440000")
    assert (bj["cases"], bj["media_reported_cases"], bj["red_black_designations"]) == (0, 0, 2)
    assert indicator(bj, "case_share")["value"] == 0.0
    assert indicator(bj, "case_share")["status"] == "missed"
    assert (gd["cases"], gd["media_reported_cases"], gd["red_black_designations"]) == (2, 2, 1)
    assert indicator(gd, "case_share")["value"] == 2.0
    assert indicator(gd, "case_share")["status"] == "met"
    assert indicator(gd, "media_reported_cases") | {"title": None, "in_words": None} == {
        "code": "media_reported_cases", "title": None, "in_words": None, "target": 30, "value": 2, "projection": 2.0,
        "status": "missed",
    }  # fmt: skip

    # ---- year Y+1, as of 1 July
    body = (await later.get("/v1/indicators", params={"year": z})).json()
    days_in_z = 366 if (z % 4 == 0 and z % 100 != 0) or z % 400 == 0 else 365
    f = ((date(z, 7, 1) - date(z, 1, 1)).days + 1) / days_in_z
    assert body["elapsed_fraction"] == round(f, 4)
    bj, gd, national = scope_of(body, "110000"), scope_of(body, "440000"), scope_of(body, None)
    assert (bj["cases"], bj["media_reported_cases"], bj["red_black_designations"]) == (33, 31, 1)
    assert indicator(bj, "case_share")["value"] == 33.0
    assert indicator(bj, "case_share")["status"] == "on_track"  # a ratio is met only once the year is over
    assert indicator(bj, "media_reported_cases") | {"title": None, "in_words": None} == {
        "code": "media_reported_cases", "title": None, "in_words": None, "target": 30, "value": 31,
        "projection": round(31 / f, 1),
        "status": "met",
    }  # fmt: skip
    assert (gd["cases"], gd["media_reported_cases"], gd["red_black_designations"]) == (18, 16, 1)
    media = indicator(gd, "media_reported_cases")
    assert media["projection"] == round(16 / f, 1)
    assert media["status"] == "on_track"  # 16 by July projects past 30
    assert (national["cases"], national["red_black_designations"]) == (51, 2)
    assert indicator(national, "case_share")["value"] == 25.5
    # A province with units but nothing this year: no ratio, at risk.
    sh = scope_of(body, "310000")
    assert indicator(sh, "case_share")["value"] is None
    assert indicator(sh, "case_share")["status"] == "at_risk"
    assert indicator(sh, "media_reported_cases")["status"] == "at_risk"
    only = (await later.get("/v1/indicators", params={"year": z, "province": "440000"})).json()["scopes"]
    assert [s["province"] for s in only] == ["440000"]

    # ---- efficacy: cases, subjects reached, restored later, median days to restoration
    eff = {m["measure"]: m for m in (await later.get("/v1/efficacy", params={"year": y})).json()["measures"]}
    assert eff["tax-black-customs-inspection"] | {"mou": None} == {
        "measure": "tax-black-customs-inspection", "mou": None, "measure_kind": "punishment", "cases": 1,
        "subjects_reached": 1, "restored_subjects": 1,
        "median_days_to_restoration": float((d(z, 4, 1) - d(y, 12, 31)).days),
    }  # fmt: skip
    assert eff["court-black-high-consumption"]["restored_subjects"] == 0
    assert eff["court-black-high-consumption"]["median_days_to_restoration"] is None
    eff = {m["measure"]: m for m in (await later.get("/v1/efficacy", params={"year": z})).json()["measures"]}
    ban = eff["tax-black-legal-representative-ban"]
    assert (ban["cases"], ban["subjects_reached"], ban["restored_subjects"]) == (2, 2, 2)
    assert ban["median_days_to_restoration"] == statistics.median(
        [(d(z, 4, 1) - d(z, 1, 1)).days, (d(z, 1, 25) - d(z, 1, 5)).days]
    )
    court = eff["court-black-high-consumption"]
    assert (court["cases"], court["subjects_reached"], court["restored_subjects"]) == (17, 1, 0)
    green = eff["tax-red-green-channel"]
    assert (green["cases"], green["subjects_reached"], green["restored_subjects"]) == (31, 1, 0)
    assert eff["env-ks-more-inspections"]["cases"] == 1

    # ---- tallies by dimension
    by = (await later.get("/v1/tallies", params={"year": z, "province": "110000"})).json()["by"]
    months = Counter([1, 1] + [day.month for day in media_bj])
    assert {r["key"]: r["cases"] for r in by["month"]} == dict(months)
    assert {r["key"]: r["cases"] for r in by["measure"]} == {
        "tax-black-legal-representative-ban": 2,
        "tax-red-green-channel": 31,
    }
    assert {r["key"]: r["cases"] for r in by["unit"]} == {"110105-SAMR": 2, "110000-SAMR": 31}
    assert {r["key"]: (r["cases"], r["typical"], r["media_reported"]) for r in by["list"]} == {
        "black": (2, 1, 0),
        "red": (31, 0, 31),
    }
    by = (await later.get("/v1/tallies", params={"year": z})).json()["by"]
    assert {r["key"]: r["cases"] for r in by["province"]} == {"110000": 33, "440000": 18}
    assert {r["key"]: r["cases"] for r in by["field"]} == {"taxation": 33, "court_enforcement": 17, "environment": 1}


async def test_progress_follows_the_catalogue_and_the_designations(
    cases: ServiceProcess, stack: Settings, kafka: AIOKafkaProducer, http: httpx.AsyncClient
) -> None:
    # Test-only reference records on the real topic: a field with a signed MOU, a unit without a liaison.
    tag = uuid.uuid4().hex[:8]
    field, mou, unit = f"ct_{tag}", f"mou-ct-{tag}", f"990000-CT{tag}"
    records: list[Any] = [
        FieldRecord(code=field, name=f"Integration-test field {tag}", key_field=False),
        MouRecord(
            code=mou,
            title=f"Integration-test MOU {tag}",
            signed_on=date(2020, 1, 1),
            fields=[field],
            measures=[
                Measure(
                    code=f"ct-{tag}-measure",
                    measure_kind="punishment",
                    list="black",
                    implementing_fields=[field],
                    description="Test measure.",
                    legal_basis="None.",
                )
            ],
        ),
        UnitRecord(
            code=unit,
            name=f"Integration-test unit {tag}",
            level="provincial",
            region="990000",
            unit_kind="department",
            authorised_fields=[field],
            parent=None,
            liaison=None,
        ),
    ]
    await publish_records(records, stack.kafka_bootstrap_servers, force=True)
    try:

        async def progress() -> dict[str, Any]:
            body: dict[str, Any] = (await http.get("/v1/progress")).json()
            return body

        async def listed() -> dict[str, Any] | None:
            body = await progress()
            fields = {f["field"]: f for f in body["fields_without_designations"]}
            units = {u["unit"] for u in body["units_without_liaison"]}
            return body if field in fields and unit in units else None

        body = await poll(listed, timeout=30)
        (mine,) = [f for f in body["fields_without_designations"] if f["field"] == field]
        assert mine == {"field": field, "name": f"Integration-test field {tag}", "mous": [mou]}
        assert "100000-CFDA" not in {u["unit"] for u in body["units_without_liaison"]}  # inactive: not counted

        # A designation in the field, and a liaison named: both leave the list.
        await designated(kafka, record(company(), list_="black", field=field, unit=unit))
        await caught_up(stack)
        named = records[2].model_copy(update={"liaison": Liaison(name="Li Hua", title="Director", phone="020-1234")})
        await publish_records([named], stack.kafka_bootstrap_servers, force=True)

        async def gone() -> bool:
            body = await progress()
            return field not in {f["field"] for f in body["fields_without_designations"]} and unit not in {
                u["unit"] for u in body["units_without_liaison"]
            }

        await poll(gone, timeout=30)
        measures = {m["measure"]: m for m in (await http.get("/v1/measures")).json()["measures"]}
        assert measures[f"ct-{tag}-measure"]["cases"] == 0
        assert measures[f"ct-{tag}-measure"]["mou"] == mou
    finally:
        for key in (f"mou:{mou}", f"unit:{unit}", f"field:{field}"):
            await kafka.send_and_wait(topics.REFERENCE, None, key=key.encode())
