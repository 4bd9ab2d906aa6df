"""The warning service on the events of a real designation service (its own process, port 18123):
departments designate through the requests topic; the warning list and the transfer follow."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.clock import SHANGHAI
from credit_common.messaging import topics
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import company, event, poll, publish, today
from tests.support.processes import ServiceProcess

from .conftest import (
    DESIGNATION_PORT,
    INSTANCE,
    conduct_report,
    report,
    wait_warning_events,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def designation(stack: Settings) -> AsyncIterator[ServiceProcess]:
    svc = ServiceProcess("designation", DESIGNATION_PORT, instance=INSTANCE)
    await svc.start()
    yield svc
    await svc.stop()
    await svc.discard()


def designate(list_: str, standard: str, subject: dict[str, Any], unit: str, **extra: Any) -> dict[str, Any]:
    data = {
        "list": list_,
        "standard": standard,
        "subject": subject,
        "decision": {
            "document_no": f"DOC-{uuid.uuid4().hex[:8]}",
            "decided_on": datetime.now(SHANGHAI).date().isoformat(),
            "facts": "Facts established by the investigation.",
        },
        **extra,
    }
    return event(f"unit/{unit}", "credit.designation.designate", data, subject=subject["id"], at=datetime.now(UTC))


async def designated(kafka: AIOKafkaProducer, collector: Collector, request: dict[str, Any]) -> str:
    await publish(kafka, request, topics.DESIGNATION_REQUESTS)
    answer = await collector.answer(request["id"], timeout=60)
    assert answer["type"] == "credit.request.accepted", answer["data"]
    return str(answer["data"]["result_id"])


async def test_designations_list_a_subject_and_a_transfer_closes_the_recommendation_and_clears_it(
    designation: ServiceProcess,
    warning: ServiceProcess,
    kafka: AIOKafkaProducer,
    collector: Collector,
    http: httpx.AsyncClient,
) -> None:
    subject = company()
    sid = subject["id"]
    ids = {}
    for field, unit in (("taxation", "100000-SAT"), ("customs", "100000-GAC"), ("environment", "100000-MEE")):
        ids[field] = await designated(
            kafka, collector, designate("key_scrutiny", f"{field}-key_scrutiny", subject, unit)
        )
    (listed,) = await wait_warning_events(collector, sid, 1, timeout=60)
    assert listed["type"] == "credit.warning.listed"
    assert listed["data"]["fields"] == ["customs", "environment", "taxation"]
    assert listed["data"]["designation_ids"] == sorted(ids.values())
    body = (await http.get(f"/v1/warnings/{sid}")).json()
    assert sorted(e["designation_id"] for e in body["entries"]) == sorted(ids.values())
    assert all(e["status"] == "active" and e["list"] == "key_scrutiny" for e in body["entries"])

    # the conduct occurred today, within the entries' period (which began today)
    serious = conduct_report(subject, "taxation", unit="110000-SAT", occurred_on=today().isoformat())
    assert (await report(kafka, collector, serious))["type"] == "credit.request.accepted"
    (rec,) = await collector.wait_for(
        topics.WARNING_EVENTS,
        lambda e: e["type"] == "credit.transfer.recommended" and e["data"]["conduct_report_id"] == serious["id"],
    )
    assert rec["data"]["unit"] == "100000-SAT"
    assert rec["data"]["designation_id"] == ids["taxation"]

    # The designating unit follows the recommendation: black, transferring the key-scrutiny entry.
    black = await designated(
        kafka,
        collector,
        designate("black", "taxation-black", subject, "100000-SAT", transfer_from=ids["taxation"]),
    )
    _, cleared = await wait_warning_events(collector, sid, 2, timeout=60)
    assert cleared["type"] == "credit.warning.cleared"
    assert cleared["data"]["remaining_fields"] == ["customs", "environment"]

    async def closed() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = (
            await http.get("/v1/transfers", params={"subject": sid, "status": "closed"})
        ).json()["transfers"]
        return rows

    (done,) = await poll(closed)
    assert done["closed_reason"] == "transferred"
    assert done["closed_by"] == black
