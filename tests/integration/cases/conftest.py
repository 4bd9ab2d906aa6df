"""The cases service as a real process (port 18105), and helpers to feed it as the platform does:
designation and objection events as their services publish them, enforcement reports as
departments send them; and what it publishes, read back from its topics (case events, feedback)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import at_noon, conforming, created, event, publish, today
from tests.support.kafka_admin import wait_caught_up
from tests.support.processes import ServiceProcess, deployment, new_instance
from tests.support.signing import SigningProducer

pytestmark = pytest.mark.integration

CASES_PORT = 18105
TIME_TRAVELLER_PORT = 18115
CLERK_PORT = 18145  # an instance receiving reports while its clock (CREDIT_NOW) reads their date
INSTANCE = new_instance()  # this suite's deployment: its own schema and consumer groups
GROUP = deployment(INSTANCE).group_of("cases")
SCHEMA = deployment(INSTANCE).schema_of("cases")
INPUTS = [topics.DESIGNATION_EVENTS, topics.OBJECTION_EVENTS, topics.ENFORCEMENT_ACTIONS]


@pytest.fixture(scope="package")
async def cases(stack: Settings) -> AsyncIterator[ServiceProcess]:
    svc = ServiceProcess("cases", CASES_PORT, instance=INSTANCE)
    await svc.start()
    await caught_up(stack, timeout=600)  # tests start from a service that has read everything
    yield svc
    await svc.stop()
    await svc.discard()


@pytest.fixture(scope="package")
async def kafka(stack: Settings) -> AsyncIterator[AIOKafkaProducer]:
    p = SigningProducer(**kafka_options(stack.kafka_bootstrap_servers), enable_idempotence=True)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture(scope="package")
async def collector(stack: Settings) -> AsyncIterator[Collector]:
    c = Collector(stack.kafka_bootstrap_servers, [topics.CASES_EVENTS, topics.FEEDBACK])
    await c.start()
    yield c
    await c.stop()


@pytest.fixture(scope="package")
async def http(cases: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with cases.client() as c:
        yield c


async def caught_up(stack: Settings, timeout: float = 120.0) -> None:
    """Every input published so far is applied (group `cases` has no lag)."""
    await wait_caught_up(stack.kafka_bootstrap_servers, GROUP, INPUTS, timeout=timeout)


async def designated(kafka: AIOKafkaProducer, *recs: dict[str, Any], at: datetime | None = None) -> None:
    """Publish each record as created (at noon of its decision day unless `at` is given)."""
    for rec in recs:
        when = at or at_noon(date.fromisoformat(rec["decision"]["decided_on"]))
        await publish(kafka, created(rec, at=when))


def objection_event(type_: str, rec: dict[str, Any], objection_id: str, **data: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"objection_id": objection_id, "designation_id": rec["designation_id"], "unit": rec["unit"]}
    if type_ == "credit.objection.opened":
        body |= {
            "objector": {"kind": "subject", "id": rec["subject"]["id"], "name": rec["subject"]["name"]},
            "grounds": "The facts are wrong.",
            "due_on": today().isoformat(),
        }
    elif type_ == "credit.objection.overdue":
        body |= {"due_on": today().isoformat()}
    elif type_ == "credit.objection.resolved":
        body |= {"outcome": "rejected", "reasoning": "Reviewed.", "decided_on": today().isoformat()}
    body |= data
    return event("platform/objection", type_, body, subject=rec["subject"]["id"])


def report(
    rec: dict[str, Any],
    unit: str,
    measure: str,
    applied_on: date | None = None,
    *,
    typical: bool = False,
    media: int = 0,
    media_level: str = "provincial",
    at: datetime | None = None,
    source: str | None = None,
    **data: Any,
) -> dict[str, Any]:
    """A `credit.enforcement.report` from `unit` (sent at noon of `applied_on` unless `at`)."""
    day = applied_on or today()
    body = {
        "designation_id": rec["designation_id"],
        "measure": measure,
        "applied_on": day.isoformat(),
        "outcome": "Applied as the memorandum provides.",
        "description": f"Measure {measure} applied.",
        "typical": typical,
        "media": [
            {
                "outlet": f"{media_level.title()} Daily {i}",
                "level": media_level,
                "url": f"https://news.example.cn/{rec['designation_id']}/{i}",
                "published_on": day.isoformat(),
            }
            for i in range(media)
        ],
        **data,
    }
    # Noon of the day applied, but never ahead of now: from midnight to noon in Shanghai, noon of
    # today is hours ahead, and a request timed ahead is refused clock_skew (CI failed so after
    # 16:00 UTC).
    when = at or min(at_noon(day), datetime.now(UTC))
    return event(source or f"unit/{unit}", "credit.enforcement.report", body, subject=rec["subject"]["id"], at=when)


async def send(kafka: AIOKafkaProducer, collector: Collector, ev: dict[str, Any]) -> dict[str, Any]:
    """Send a report on the enforcement actions topic; returns its one answer from the feedback topic."""
    await publish(kafka, ev, topics.ENFORCEMENT_ACTIONS)
    answer = await collector.answer(ev["id"], timeout=60)
    assert answer["source"] == "platform/cases"
    assert answer["data"]["request_type"] == "credit.enforcement.report"
    return answer


async def accepted(kafka: AIOKafkaProducer, collector: Collector, ev: dict[str, Any]) -> dict[str, Any]:
    answer = await send(kafka, collector, ev)
    assert answer["type"] == "credit.request.accepted", answer["data"]
    assert answer["data"]["result_id"] == ev["id"]
    return answer


async def rejected(kafka: AIOKafkaProducer, collector: Collector, ev: dict[str, Any]) -> list[tuple[str, str | None]]:
    """The (code, field) pairs of the report's rejection."""
    answer = await send(kafka, collector, ev)
    assert answer["type"] == "credit.request.rejected", answer["data"]
    return [(e["code"], e["field"]) for e in answer["data"]["errors"]]


async def recorded(collector: Collector, case_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The one `credit.case.recorded` of `case_id` (checked against the contract)."""
    (found,) = await collector.wait_for(
        topics.CASES_EVENTS,
        lambda e: e["type"] == "credit.case.recorded" and e["data"]["case_id"] == case_id,
        timeout=timeout,
    )
    return conforming(found)
