"""Campaigns of special handling (the notice, section VI), through the real service: a campaign
record published on the reference topic, designations and enforcement reports naming it, a report
outside it refused, and its progress against its targets at `GET /v1/campaigns[/{code}]` and on
the dashboard."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.contracts.reference import CampaignRecord, CampaignTargets
from credit_common.messaging import topics
from credit_common.reference.cli import publish_records
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import company, poll, record, today

from .conftest import accepted, caught_up, designated, rejected, report

pytestmark = pytest.mark.integration
MEASURE = "tax-black-legal-representative-ban"  # implemented by market regulation


async def test_designations_and_cases_count_toward_a_campaign_and_a_case_outside_it_is_refused(
    stack: Settings, kafka: AIOKafkaProducer, collector: Collector, http: httpx.AsyncClient
) -> None:
    code = f"ct-{uuid.uuid4().hex[:8]}"
    day = today()
    campaign = CampaignRecord(
        code=code,
        title="Integration-test campaign against false invoices in Beijing",
        fields=["taxation"],
        regions=["110000"],
        starts_on=day - timedelta(days=30),
        ends_on=day + timedelta(days=30),
        targets=CampaignTargets(designations=3, cases=10),
    )
    await publish_records([campaign], stack.kafka_bootstrap_servers, force=True)
    try:

        async def known() -> Any:
            r = await http.get(f"/v1/campaigns/{code}")
            return r.json() if r.status_code == 200 else None

        await poll(known, timeout=30)
        recs = [record(company(), decided_on=day - timedelta(days=5), campaign=code) for _ in range(2)]
        await designated(kafka, *recs, record(company(), decided_on=day - timedelta(days=5)))
        await caught_up(stack)

        case = report(recs[0], "110105-SAMR", MEASURE, day, campaign=code)
        await accepted(kafka, collector, case)
        elsewhere = report(recs[1], "440000-SAMR", MEASURE, day, campaign=code)  # Guangdong: not in it
        assert await rejected(kafka, collector, elsewhere) == [("schema_violation", "campaign")]
        unknown = report(recs[1], "110105-SAMR", MEASURE, day, campaign=f"{code}-x")
        assert await rejected(kafka, collector, unknown) == [("schema_violation", "campaign")]
        await caught_up(stack)

        body = (await http.get(f"/v1/campaigns/{code}")).json()
        share = 31 / 61  # 30 days before today, today, 30 after
        assert body["elapsed_fraction"] == round(share, 4)
        assert body["designations"] == {
            "target": 3, "value": 2, "projection": round(2 / share, 1), "status": "on_track",
        }  # fmt: skip
        assert body["cases"] == {"target": 10, "value": 1, "projection": round(1 / share, 1), "status": "at_risk"}
        assert body["by"] == [
            {"field": "taxation", "province": "110000", "designations": 2, "cases": 1, "typical_cases": 0}
        ]
        listed = {c["code"]: c for c in (await http.get("/v1/campaigns")).json()["campaigns"]}
        assert listed[code]["cases"]["value"] == 1
        assert "by" not in listed[code]
        assert {"2026-false-invoices", "2026-gd-food-safety"} <= set(listed)  # the sample catalogue's
        assert (await http.get(f"/v1/campaigns/{code}-x")).status_code == 404

        async def on_dashboard() -> Any:
            doc = (await http.get("/dashboard.json")).json()
            (panel,) = [p for p in doc["panels"] if p["key"] == "campaigns"]
            rows = {r[0]["text"]: r for r in panel["rows"]}
            return rows.get(code) if rows.get(code, [None] * 7)[6] == 1 else None

        row = await poll(on_dashboard, timeout=30)
        assert row[3:6] == [2, 3, "on_track"]
    finally:
        await kafka.send_and_wait(topics.REFERENCE, None, key=f"campaign:{code}".encode())
