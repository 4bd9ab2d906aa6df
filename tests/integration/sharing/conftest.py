"""The sharing service as a real process (port 18102; a second instance, when a test needs two, on
18112), and helpers to feed it as the platform does: designation events as the designation service
publishes them (source `platform/designation`, the whole record), objection and warning events,
or real designation requests through a designation process of our own (port 18122)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.contracts.envelope import CONTENT_TYPE, new_id
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.kafka_admin import wait_caught_up
from tests.support.processes import ServiceProcess, deployment, new_instance
from tests.support.signing import SigningProducer

pytestmark = pytest.mark.integration

SHARING_PORT = 18102
SECOND_SHARING_PORT = 18112
DESIGNATION_PORT = 18122
INSTANCE = new_instance()  # this suite's deployment: its own schema and consumer groups
GROUP = deployment(INSTANCE).group_of("sharing")
SCHEMA = deployment(INSTANCE).schema_of("sharing")
INPUTS = [topics.DESIGNATION_EVENTS, topics.OBJECTION_EVENTS, topics.WARNING_EVENTS]
OUTPUTS = [topics.LISTS_CHANGES, topics.LISTS_PUBLIC]


@pytest.fixture(scope="package")
async def sharing(stack: Settings) -> AsyncIterator[ServiceProcess]:
    svc = ServiceProcess("sharing", SHARING_PORT, instance=INSTANCE)
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
async def lists(stack: Settings) -> AsyncIterator[Collector]:
    """What sharing publishes (both list-change topics), and what it reads, from now on."""
    c = Collector(stack.kafka_bootstrap_servers, [*OUTPUTS, topics.DESIGNATION_EVENTS, topics.FEEDBACK])
    await c.start()
    yield c
    await c.stop()


@pytest.fixture
async def http(sharing: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with sharing.client() as c:
        yield c


async def caught_up(stack: Settings, timeout: float = 180.0) -> None:
    """Every input event published so far is applied (group `sharing` has no lag)."""
    await wait_caught_up(stack.kafka_bootstrap_servers, GROUP, INPUTS, timeout=timeout)


# ------------------------------------------------------------------- platform events, direct


def record(
    subject: dict[str, Any],
    *,
    list_: str = "black",
    designation_id: str | None = None,
    unit: str = "T-0000",
    region: str = "990101",
    field: str = "work_safety",
    standard: str | None = None,
    public: bool = True,
    effective_from: date = date(2025, 3, 1),
    effective_to: date = date(2026, 2, 28),
    facts: str = "Facts established by the investigation.",
    decided_on: date | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A whole designation record, as designation events carry it."""
    return {
        "designation_id": designation_id or new_id(),
        "list": list_,
        "field": field,
        "standard": standard or f"{field}-{list_}",
        "standard_version": 1,
        "subject": subject,
        "unit": unit,
        "unit_level": "county",
        "region": region,
        "decision": {
            "document_no": f"DOC-{uuid.uuid4().hex[:8]}",
            "decided_on": (decided_on or effective_from).isoformat(),
            "facts": facts,
        },
        "effective_from": effective_from.isoformat(),
        "effective_to": effective_to.isoformat(),
        "public": public,
        "status": "active",
        **extra,
    }


def event(
    source: str, type_: str, data: dict[str, Any], *, subject: str, at: datetime, id: str | None = None
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": id or new_id(),
        "source": source,
        "type": type_,
        "time": at.isoformat(),
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }


def designation_event(type_: str, rec: dict[str, Any], at: datetime, **data: Any) -> dict[str, Any]:
    """`credit.designation.created|amended|removed` as the designation service publishes it."""
    return event("platform/designation", type_, {"record": rec, **data}, subject=rec["subject"]["id"], at=at)


def created(rec: dict[str, Any], at: datetime) -> dict[str, Any]:
    return designation_event("credit.designation.created", rec, at)


def amended(rec: dict[str, Any], at: datetime, changes: dict[str, Any]) -> dict[str, Any]:
    return designation_event("credit.designation.amended", rec, at, changes=changes, reason="Correction.")


def removed(rec: dict[str, Any], at: datetime, reason: str = "revoked") -> dict[str, Any]:
    gone = {**rec, "status": "removed", "removal_reason": reason, "removed_at": at.isoformat()}
    return designation_event("credit.designation.removed", gone, at, reason=reason)


def objection_opened(rec: dict[str, Any], objection_id: str, at: datetime) -> dict[str, Any]:
    data = {
        "objection_id": objection_id,
        "designation_id": rec["designation_id"],
        "unit": rec["unit"],
        "objector": {"kind": "subject", "id": rec["subject"]["id"], "name": rec["subject"]["name"]},
        "grounds": "The facts are wrong.",
        "due_on": (at.date() + timedelta(days=14)).isoformat(),
    }
    return event("platform/objection", "credit.objection.opened", data, subject=rec["subject"]["id"], at=at)


def objection_resolved(rec: dict[str, Any], objection_id: str, at: datetime, outcome: str) -> dict[str, Any]:
    data = {
        "objection_id": objection_id,
        "designation_id": rec["designation_id"],
        "unit": rec["unit"],
        "outcome": outcome,
        "reasoning": "Decided on the evidence.",
        "decided_on": at.date().isoformat(),
    }
    return event("platform/objection", "credit.objection.resolved", data, subject=rec["subject"]["id"], at=at)


TOPIC_OF_SOURCE = {
    "platform/designation": topics.DESIGNATION_EVENTS,
    "platform/objection": topics.OBJECTION_EVENTS,
    "platform/warning": topics.WARNING_EVENTS,
}


async def publish(kafka: AIOKafkaProducer, ev: dict[str, Any], topic: str | None = None) -> None:
    """An event on its topic, keyed by its subject, acknowledged before this returns (so events of
    one subject are published in the order they are given)."""
    await kafka.send_and_wait(
        topic or TOPIC_OF_SOURCE[ev["source"]],
        orjson.dumps(ev),
        key=str(ev["subject"]).encode(),
        headers=[("content-type", CONTENT_TYPE.encode())],
    )


# ------------------------------------------------------------ requests, through designation


def request(type_: str, data: dict[str, Any], *, unit: str, subject: str) -> dict[str, Any]:
    return event(f"unit/{unit}", type_, data, subject=subject, at=datetime.now(UTC))


def designate(list_: str, standard: str, subject: dict[str, Any], *, unit: str, **extra: Any) -> dict[str, Any]:
    data = {
        "list": list_,
        "standard": standard,
        "subject": subject,
        "decision": {
            "document_no": f"DOC-{uuid.uuid4().hex[:8]}",
            "decided_on": datetime.now(UTC).date().isoformat(),
            "facts": f"Serious work safety violations by {subject['name']}.",
        },
        **extra,
    }
    return request("credit.designation.designate", data, unit=unit, subject=subject["id"])


def revoke(designation_id: str, *, unit: str, subject: str) -> dict[str, Any]:
    data = {
        "designation_id": designation_id,
        "reason": "revoked",
        "decision": {
            "document_no": f"REV-{uuid.uuid4().hex[:8]}",
            "decided_on": datetime.now(UTC).date().isoformat(),
            "facts": "The designating unit revokes its decision.",
        },
    }
    return request("credit.designation.remove", data, unit=unit, subject=subject)


async def send_request(kafka: AIOKafkaProducer, req: dict[str, Any]) -> str:
    await publish(kafka, req, topics.DESIGNATION_REQUESTS)
    return str(req["id"])


async def answer(collector: Collector, request_id: str, timeout: float = 60.0) -> dict[str, Any]:
    return await collector.answer(request_id, timeout=timeout)
