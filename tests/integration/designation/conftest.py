"""The designation service as a real process, and helpers to talk to it as departments do:
requests on the requests topic or through POST /v1/requests, answers on the feedback topic."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.contracts.envelope import CONTENT_TYPE, new_id
from credit_common.messaging import topics
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.processes import ServiceProcess
from tests.support.subjects import new_resident_id, new_uscc

pytestmark = pytest.mark.integration

DESIGNATION_PORT = 18101


@pytest.fixture(scope="session")
async def designation(stack: Settings) -> AsyncIterator[ServiceProcess]:
    svc = ServiceProcess("designation", DESIGNATION_PORT)
    await svc.start()
    yield svc
    await svc.stop()


@pytest.fixture(scope="session")
async def collector(stack: Settings) -> AsyncIterator[Collector]:
    c = Collector(stack.kafka_bootstrap_servers, [topics.FEEDBACK, topics.DESIGNATION_EVENTS, topics.DEADLETTER])
    await c.start()
    yield c
    await c.stop()


@pytest.fixture(scope="session")
async def kafka(stack: Settings) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap_servers, enable_idempotence=True)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def http(designation: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with designation.client() as c:
        yield c


def company(name: str = "Example Trading Co., Ltd.") -> dict[str, Any]:
    return {
        "kind": "legal_person",
        "scheme": "uscc",
        "id": new_uscc(),
        "name": name,
        "legal_representative": "Zhang Wei",
    }


def person(name: str = "Li Na") -> dict[str, Any]:
    return {"kind": "natural_person", "scheme": "resident_id", "id": new_resident_id(), "name": name}


def request(
    type_: str,
    data: dict[str, Any],
    *,
    unit: str = "100000-SAT",
    subject: str | None = None,
    at: datetime | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """A department's request as a CloudEvent dict."""
    return {
        "specversion": "1.0",
        "id": id or new_id(),
        "source": f"unit/{unit}",
        "type": type_,
        "time": (at or datetime.now(UTC)).isoformat(),
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }


def designate(
    list_: str,
    standard: str,
    subject: dict[str, Any],
    *,
    unit: str = "100000-SAT",
    decided_on: date | None = None,
    **extra: Any,
) -> dict[str, Any]:
    data = {
        "list": list_,
        "standard": standard,
        "subject": subject,
        "decision": {
            "document_no": f"DOC-{uuid.uuid4().hex[:8]}",
            "decided_on": (decided_on or datetime.now(UTC).date()).isoformat(),
            "facts": "Facts established by the investigation.",
        },
        **extra,
    }
    return request("credit.designation.designate", data, unit=unit, subject=subject["id"].upper())


async def send(kafka: AIOKafkaProducer, event: dict[str, Any], topic: str = topics.DESIGNATION_REQUESTS) -> str:
    """Publish a request on Kafka as a department's system does; returns its id."""
    key = (event.get("subject") or event["id"]).encode()
    await kafka.send_and_wait(topic, orjson.dumps(event), key=key, headers=[("content-type", CONTENT_TYPE.encode())])
    return str(event["id"])


async def post(http: httpx.AsyncClient, event: dict[str, Any]) -> httpx.Response:
    return await http.post("/v1/requests", content=orjson.dumps(event), headers={"content-type": CONTENT_TYPE})
