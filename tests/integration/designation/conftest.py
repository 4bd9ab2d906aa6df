"""The designation service as a real process, and helpers to talk to it as departments do:
requests on the requests topic or through POST /v1/requests, answers on the feedback topic."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.clock import SHANGHAI
from credit_common.contracts.envelope import CONTENT_TYPE, new_id
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import company, person, today
from tests.support.processes import ServiceProcess, deployment, new_instance
from tests.support.signing import SigningProducer, sign

pytestmark = pytest.mark.integration

DESIGNATION_PORT = 18101
INSTANCE = new_instance()  # this suite's deployment: its own schema and consumer groups
GROUP = deployment(INSTANCE).group_of("designation")
FEEDBACK_GROUP = deployment(INSTANCE).group_of("designation.feedback")
SCHEMA = deployment(INSTANCE).schema_of("designation")


@pytest.fixture(scope="package")
async def designation(stack: Settings) -> AsyncIterator[ServiceProcess]:
    svc = ServiceProcess("designation", DESIGNATION_PORT, instance=INSTANCE)
    await svc.start()
    yield svc
    await svc.stop()
    await svc.discard()


@pytest.fixture(scope="package")
async def collector(stack: Settings) -> AsyncIterator[Collector]:
    c = Collector(
        stack.kafka_bootstrap_servers,
        [topics.FEEDBACK, topics.DESIGNATION_EVENTS, topics.DEADLETTER, topics.SUBJECT_NOTICES],
    )
    await c.start()
    yield c
    await c.stop()


@pytest.fixture(scope="package")
async def kafka(stack: Settings) -> AsyncIterator[AIOKafkaProducer]:
    p = SigningProducer(**kafka_options(stack.kafka_bootstrap_servers), enable_idempotence=True)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def http(designation: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with designation.client() as c:
        yield c


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
    return await http.post("/v1/requests", content=orjson.dumps(sign(event)), headers={"content-type": CONTENT_TYPE})


# ---------------------------------------------------------------------- helpers of the rule and flow tests

INGRESSES = ("kafka", "http")
"""The two ways a department sends a request: the requests topic, or POST /v1/requests."""

CATALOG_DIR = Path(__file__).resolve().parents[3] / "deploy" / "catalog"


@pytest.fixture(scope="package")
def catalogue() -> Catalog:
    """The published sample catalogue, read from its YAML files (what the expectations rest on)."""
    return Catalog.of(load_files([CATALOG_DIR]))


def kinds() -> pytest.MarkDecorator:
    """Parametrize a test over a legal person and a natural person (`subject_of` builds one)."""
    return pytest.mark.parametrize("kind", ["legal_person", "natural_person"])


def subject_of(kind: str) -> dict[str, Any]:
    return company() if kind == "legal_person" else person()


def remove(designation_id: str, *, unit: str = "100000-SAT", subject: str | None = None) -> dict[str, Any]:
    return request(
        "credit.designation.remove",
        {
            "designation_id": designation_id,
            "reason": "revoked",
            "decision": {
                "document_no": f"REV-{uuid.uuid4().hex[:8]}",
                "decided_on": today().isoformat(),
                "facts": "The designating unit revokes its decision.",
            },
        },
        unit=unit,
        subject=subject,
    )


def amend(
    designation_id: str,
    changes: dict[str, Any],
    *,
    unit: str = "100000-SAT",
    reason: str = "Correction of the record.",
    subject: str | None = None,
) -> dict[str, Any]:
    return request(
        "credit.designation.amend",
        {"designation_id": designation_id, "changes": changes, "reason": reason},
        unit=unit,
        subject=subject,
    )


def platform_event(type_: str, data: dict[str, Any], *, subject: str, causationid: str | None = None) -> dict[str, Any]:
    """An event of the objection service (source `platform/objection`) as it would publish it."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": new_id(),
        "source": "platform/objection",
        "type": type_,
        "time": datetime.now(SHANGHAI).isoformat(),
        "subject": subject,
        "datacontenttype": "application/json",
        "data": data,
    }
    if causationid is not None:
        event["causationid"] = causationid
        event["correlationid"] = causationid
    return event


@dataclass
class Answer:
    """A request's one answer, as the feedback topic (and, through HTTP, GET /v1/requests) gives it."""

    status: str  # accepted | rejected
    result_id: str | None
    errors: list[dict[str, Any]]
    key: str | None  # the feedback record's Kafka key: the sending unit
    event: dict[str, Any]

    @property
    def codes(self) -> set[str]:
        return {e["code"] for e in self.errors}

    @property
    def fields(self) -> set[tuple[str, str | None]]:
        return {(e["code"], e["field"]) for e in self.errors}


class Departments:
    """Talks to the designation service as departments' systems do, through either ingress, and
    reads what it publishes (answers, designation events, dead letters)."""

    def __init__(self, kafka: AIOKafkaProducer, http: httpx.AsyncClient, collector: Collector) -> None:
        self.kafka = kafka
        self.http = http
        self.collector = collector

    async def submit(self, event: dict[str, Any], via: str = "kafka") -> Answer:
        """Send a request and return its answer. Through HTTP: 202 with the id, then GET
        /v1/requests/{id} polled until answered, which must agree with the feedback topic."""
        rid = str(event["id"])
        if via == "kafka":
            await send(self.kafka, event)
            fb = await self.collector.answer(rid)
        else:
            assert via == "http", via
            response = await post(self.http, event)
            assert response.status_code == 202, response.text
            body = response.json()
            assert body["id"] == rid
            assert body["status"] == "pending"
            assert response.headers["location"] == f"/v1/requests/{rid}"
            status = await self.poll_request(rid)
            fb = await self.collector.answer(rid)
            assert status["status"] == fb["type"].rsplit(".", 1)[-1], (status, fb)
            assert status["result_id"] == fb["data"].get("result_id")
            assert status["errors"] == fb["data"].get("errors", [])
            assert status["type"] == event["type"]
            assert status["unit"] == fb["_key"]
        assert fb["source"] == "platform/designation"
        assert fb["data"]["request_id"] == rid
        assert fb["data"]["request_type"] == event["type"]
        return Answer(
            status=fb["type"].rsplit(".", 1)[-1],
            result_id=fb["data"].get("result_id"),
            errors=fb["data"].get("errors", []),
            key=fb["_key"],
            event=fb,
        )

    async def poll_request(self, request_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """GET /v1/requests/{id} until it is no longer pending."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            response = await self.http.get(f"/v1/requests/{request_id}")
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            assert body["id"] == request_id
            assert body["status"] in ("pending", "accepted", "rejected"), body
            if body["status"] != "pending":
                return body
            assert asyncio.get_running_loop().time() < deadline, f"{request_id} still pending: {body}"
            await asyncio.sleep(0.1)

    async def accepted(self, event: dict[str, Any], via: str = "kafka") -> str:
        """Send a request that must be accepted; returns its result id (the designation id)."""
        answer = await self.submit(event, via)
        assert answer.status == "accepted", answer.errors
        assert answer.key == event["source"].removeprefix("unit/")
        assert answer.result_id is not None
        return answer.result_id

    async def rejected(self, event: dict[str, Any], via: str = "kafka") -> Answer:
        answer = await self.submit(event, via)
        assert answer.status == "rejected", answer
        assert answer.key == event["source"].removeprefix("unit/")
        assert answer.errors
        assert all(e["message"] for e in answer.errors)
        return answer

    async def designated(self, event: dict[str, Any], via: str = "kafka") -> dict[str, Any]:
        """Designate (must be accepted; the designation id is the request id); returns the record
        of its `credit.designation.created` event."""
        designation_id = await self.accepted(event, via)
        assert designation_id == event["id"]
        created = await self.event("credit.designation.created", designation_id)
        record: dict[str, Any] = created["data"]["record"]
        return record

    async def event(
        self, type_: str, designation_id: str, predicate: Callable[[dict[str, Any]], bool] | None = None
    ) -> dict[str, Any]:
        """The (first) event of `type_` about `designation_id` on the designation events topic."""
        found = await self.collector.wait_for(
            topics.DESIGNATION_EVENTS,
            lambda e: (
                e["type"] == type_
                and e["data"]["record"]["designation_id"] == designation_id
                and (predicate is None or predicate(e))
            ),
        )
        event = found[0]
        assert event["source"] == "platform/designation"
        assert event["_key"] == event["data"]["record"]["subject"]["id"] == event["subject"]
        return event

    def events_of(self, designation_id: str, type_: str | None = None) -> list[dict[str, Any]]:
        """Every event seen so far about `designation_id`, in the order they arrived."""
        return self.collector.where(
            topics.DESIGNATION_EVENTS,
            lambda e: e["data"]["record"]["designation_id"] == designation_id and (type_ is None or e["type"] == type_),
        )

    async def record(self, designation_id: str) -> dict[str, Any]:
        """GET /v1/designations/{id}: the record (its later decisions, the audit trail, left out)."""
        response = await self.http.get(f"/v1/designations/{designation_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        body.pop("later_decisions", None)
        body.pop("signatures", None)
        return body

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        """A platform event (objection outcomes) on its topic, keyed by its subject."""
        await self.kafka.send_and_wait(
            topic,
            orjson.dumps(event),
            key=str(event["subject"]).encode(),
            headers=[("content-type", CONTENT_TYPE.encode())],
        )


@pytest.fixture
async def departments(kafka: AIOKafkaProducer, http: httpx.AsyncClient, collector: Collector) -> Departments:
    return Departments(kafka, http, collector)
