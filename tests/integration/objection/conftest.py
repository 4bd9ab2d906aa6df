"""The objection service as a real process (port 18104), and helpers to feed it as the platform
does: designation events as the designation service publishes them (source `platform/designation`,
the whole record), objection and restoration requests as departments and the portal send them;
and what it publishes, read back from its topics (objection events, unit inbox, feedback)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.contracts.envelope import CloudEvent, new_id
from credit_common.contracts.registry import model_for
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.outcomes import derived_id
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import company, created, event, publish, today
from tests.support.kafka_admin import wait_caught_up
from tests.support.processes import ServiceProcess, deployment, new_instance
from tests.support.signing import SigningProducer

pytestmark = pytest.mark.integration

OBJECTION_PORT = 18104
TIME_TRAVELLER_PORT = 18114
DESIGNATION_PORT = 18124
SHARING_PORT = 18134
CLERK_PORT = 18144  # an instance received requests on while its clock (CREDIT_NOW) reads a past date
INSTANCE = new_instance()  # this suite's deployment: its own schema and consumer groups
GROUP = deployment(INSTANCE).group_of("objection")
SCHEMA = deployment(INSTANCE).schema_of("objection")
INPUTS = [topics.DESIGNATION_EVENTS, topics.OBJECTION_REQUESTS]
OUTPUTS = [topics.OBJECTION_EVENTS, topics.UNIT_INBOX]


@pytest.fixture(scope="package")
async def objection(stack: Settings) -> AsyncIterator[ServiceProcess]:
    svc = ServiceProcess("objection", OBJECTION_PORT, instance=INSTANCE)
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
    """What the objection service publishes (and answers), and what the others do with it."""
    c = Collector(
        stack.kafka_bootstrap_servers,
        [*OUTPUTS, topics.FEEDBACK, topics.DESIGNATION_EVENTS, topics.LISTS_CHANGES, topics.SUBJECT_NOTICES],
    )
    await c.start()
    yield c
    await c.stop()


@pytest.fixture(scope="package")
async def http(objection: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with objection.client() as c:
        yield c


async def caught_up(stack: Settings, timeout: float = 120.0) -> None:
    """Every input published so far is applied (group `objection` has no lag)."""
    await wait_caught_up(stack.kafka_bootstrap_servers, GROUP, INPUTS, timeout=timeout)


# ------------------------------------------------------------------- designation events, direct


def record(
    subject: dict[str, Any] | None = None,
    *,
    list_: str = "black",
    standard: str = "taxation-black",
    unit: str = "110108-SAT",
    effective_from: date | None = None,
    days: int = 1000,
    **extra: Any,
) -> dict[str, Any]:
    """A whole designation record, as designation events carry it (on its list 800 days by default)."""
    start = effective_from or today() - timedelta(days=800)
    return {
        "designation_id": new_id(),
        "list": list_,
        "field": standard.split("-")[0],
        "standard": standard,
        "standard_version": 1,
        "subject": subject or company(),
        "unit": unit,
        "unit_level": "county",
        "region": "110108",
        "decision": {
            "document_no": f"DOC-{uuid.uuid4().hex[:8]}",
            "decided_on": start.isoformat(),
            "facts": "Facts established by the investigation.",
        },
        "effective_from": start.isoformat(),
        "effective_to": (start + timedelta(days=days)).isoformat(),
        "public": True,
        "status": "active",
        **extra,
    }


async def designated(kafka: AIOKafkaProducer, stack: Settings, rec: dict[str, Any]) -> dict[str, Any]:
    """Publish `rec` as created and wait until the objection service has applied it."""
    await publish(kafka, created(rec))
    await caught_up(stack)
    return rec


# ------------------------------------------------------------------------------- requests


def file_objection(
    rec: dict[str, Any],
    *,
    source: str = "portal",
    objector: dict[str, Any] | None = None,
    at: datetime | None = None,
    **data: Any,
) -> dict[str, Any]:
    body = {
        "designation_id": rec["designation_id"],
        "objector": objector or {"kind": "subject", "id": rec["subject"]["id"], "name": rec["subject"]["name"]},
        "grounds": "The facts in the decision are wrong: the tax was paid on time.",
        "evidence": ["RECEIPT-2026-001"],
        **data,
    }
    return event(source, "credit.objection.file", body, subject=rec["subject"]["id"], at=at)


def decide_objection(
    objection_id: str, unit: str, outcome: str = "upheld", *, subject: str = "", at: datetime | None = None
) -> dict[str, Any]:
    body = {
        "objection_id": objection_id,
        "outcome": outcome,
        "reasoning": "Reviewed the evidence.",
        "decided_on": today().isoformat(),
    }
    return event(f"unit/{unit}", "credit.objection.decide", body, subject=subject or objection_id, at=at)


def apply_restoration(
    rec: dict[str, Any],
    *,
    applicant: str | None = None,
    measures: list[dict[str, Any]] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    body = {
        "designation_id": rec["designation_id"],
        "applicant": {"id": applicant or rec["subject"]["id"], "name": rec["subject"]["name"]},
        "measures": measures
        or [
            {"kind": "obligation_performed", "detail": "Paid the tax and late fees.", "completed_on": "2026-06-01"},
            {"kind": "restoration_training", "detail": "Restoration course.", "completed_on": "2026-06-10", "hours": 6},
        ],
        "evidence": ["RECEIPT-2026-002"],
    }
    return event("portal", "credit.restoration.apply", body, subject=rec["subject"]["id"], at=at)


def decide_restoration(
    application_id: str,
    unit: str,
    outcome: str = "approved",
    *,
    subject: str = "",
    decided_on: date | None = None,
) -> dict[str, Any]:
    body = {
        "application_id": application_id,
        "outcome": outcome,
        "reasoning": "The measures are sufficient.",
        "decided_on": (decided_on or today()).isoformat(),
    }
    return event(f"unit/{unit}", "credit.restoration.decide", body, subject=subject or application_id)


async def send(kafka: AIOKafkaProducer, collector: Collector, ev: dict[str, Any]) -> dict[str, Any]:
    """Send a request on the objection requests topic; returns its one answer from the feedback topic."""
    await publish(kafka, ev, topics.OBJECTION_REQUESTS)
    answer = await collector.answer(ev["id"], timeout=60)
    assert answer["source"] == "platform/objection"
    assert answer["data"]["request_type"] == ev["type"]
    assert answer["_key"] == (ev["source"].removeprefix("unit/") if ev["source"].startswith("unit/") else ev["source"])
    return answer


async def accepted(kafka: AIOKafkaProducer, collector: Collector, ev: dict[str, Any]) -> dict[str, Any]:
    answer = await send(kafka, collector, ev)
    assert answer["type"] == "credit.request.accepted", answer["data"]
    return answer


async def rejected(kafka: AIOKafkaProducer, collector: Collector, ev: dict[str, Any]) -> list[tuple[str, str | None]]:
    """The (code, field) pairs of the request's rejection."""
    answer = await send(kafka, collector, ev)
    assert answer["type"] == "credit.request.rejected", answer["data"]
    return [(e["code"], e["field"]) for e in answer["data"]["errors"]]


# ------------------------------------------------------------------------------- what it publishes


async def first_overdue(collector: Collector, type_: str, key: str, item_id: str, timeout: float = 30.0) -> dict:
    """The first step up the chain of an item (`credit.objection.overdue` or
    `credit.restoration.overdue`): an item long past due climbs further at once."""
    first = derived_id(item_id, "objection", type_)
    (found,) = await collector.wait_for(
        topics.OBJECTION_EVENTS, lambda e: e["type"] == type_ and e["id"] == first, timeout=timeout
    )
    assert found["data"][key] == item_id
    return conforming(found)


async def one(collector: Collector, topic: str, type_: str, key: str, value: str, timeout: float = 30.0) -> dict:
    """The one `type_` event on `topic` whose data[key] is value (checked against the contract)."""
    (found,) = await collector.wait_for(
        topic, lambda e: e["type"] == type_ and e["data"][key] == value, timeout=timeout
    )
    return conforming(found)


def conforming(found: dict[str, Any]) -> dict[str, Any]:
    """`found`, once its envelope and data are checked against the contract's models."""
    CloudEvent.model_validate({k: v for k, v in found.items() if not k.startswith("_")})
    model_for(found["type"]).model_validate(found["data"])
    return found


async def inbox_item(collector: Collector, type_: str, key: str, value: str, timeout: float = 30.0) -> dict:
    """The one inbox item of `type_` whose data.<kind>.<key> (or data.item_id) is value."""
    part = {"credit.inbox.objection": "objection", "credit.inbox.restoration": "restoration"}.get(type_)

    def match(e: dict[str, Any]) -> bool:
        return e["type"] == type_ and (e["data"][part][key] if part else e["data"]["item_id"]) == value

    (found,) = await collector.wait_for(topics.UNIT_INBOX, match, timeout=timeout)
    return conforming(found)


def filing_time(event: dict[str, Any]) -> datetime:
    """The `time` a request was made with (what the platform clock must read to receive it then)."""
    return datetime.fromisoformat(event["time"])
