"""Requests in CloudEvents binary content mode against the real service, broker and database: the
attributes in `ce_*` Kafka headers (or `ce-*` HTTP headers), the data as the value (or body), as
the official CloudEvents SDK sends them by default. Signed over the structured envelope those
headers and data stand for, they are accepted and answered like structured ones; refused, they
are answered like structured ones."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.v1.event import CloudEvent as SdkEvent
from credit_common.clock import SHANGHAI
from credit_common.messaging import topics
from credit_common.security.signing import canonical

from tests.support.signing import sign

from .conftest import Departments, company, designate

pytestmark = pytest.mark.integration


def signed_designation() -> dict[str, Any]:
    """A designate request of unit 100000-SAT, signed. Its `time` is the string the SDK writes for
    it (whole seconds, an offset other than UTC, which the SDK would write as `Z`): in binary mode
    the signature covers the attribute text as it travels."""
    event = designate("black", "taxation-black", company())
    event["time"] = datetime.now(SHANGHAI).replace(microsecond=0).isoformat()
    signed = sign(event)
    assert signed.get("signature"), "no signing key for unit:100000-SAT in .local/credentials"
    return signed


def sdk_event(doc: dict[str, Any]) -> SdkEvent:
    attributes = {k: v for k, v in doc.items() if k != "data"}
    attributes["time"] = datetime.fromisoformat(attributes["time"])
    return SdkEvent(attributes=attributes, data=doc["data"])


async def test_a_signed_designate_request_in_kafka_binary_mode_is_accepted_and_answered(
    departments: Departments,
) -> None:
    signed = signed_designation()
    message = ce_kafka.to_binary_event(sdk_event(signed))
    assert "ce_id" in message.headers
    assert b'"specversion"' not in message.value  # the value is the data alone
    await departments.kafka.send_and_wait(
        topics.DESIGNATION_REQUESTS,
        message.value,
        key=signed["subject"].encode(),
        headers=list(message.headers.items()),
    )
    answer = await departments.collector.answer(signed["id"])
    assert answer["type"] == "credit.request.accepted", answer["data"]
    assert answer["_key"] == "100000-SAT"
    assert answer["data"]["result_id"] == signed["id"]
    created = await departments.event("credit.designation.created", signed["id"])
    assert created["data"]["record"]["subject"]["id"] == signed["data"]["subject"]["id"]
    # The audit keeps what was signed: the structured envelope the headers and value stand for.
    response = await departments.http.get(f"/v1/designations/{signed['id']}")
    assert response.status_code == 200, response.text
    (kept,) = response.json()["signatures"]
    assert kept["request"] == signed
    assert canonical(kept["request"]) == canonical(signed)


async def test_a_kafka_binary_mode_request_without_ce_id_is_answered_and_dead_lettered(
    departments: Departments,
) -> None:
    signed = signed_designation()
    message = ce_kafka.to_binary_event(sdk_event(signed))
    headers = [(k, v) for k, v in message.headers.items() if k != "ce_id"]
    key = f"no-id-{signed['id']}".encode()
    await departments.kafka.send_and_wait(topics.DESIGNATION_REQUESTS, message.value, key=key, headers=headers)
    key_b64 = base64.b64encode(key).decode()
    (dead,) = await departments.collector.wait_for(topics.DEADLETTER, lambda e: e["data"].get("key_b64") == key_b64)
    position = f"{dead['data']['topic']}:{dead['data']['partition']}:{dead['data']['offset']}"
    answer = await departments.collector.answer(position)
    assert answer["type"] == "credit.request.rejected"
    assert answer["_key"] == "100000-SAT"
    assert [e["code"] for e in answer["data"]["errors"]] == ["schema_violation"]


async def test_a_signed_designate_request_in_http_binary_mode_is_accepted(departments: Departments) -> None:
    signed = signed_designation()
    message = ce_http.to_binary_event(sdk_event(signed))
    response = await departments.http.post("/v1/requests", content=message.body, headers=message.headers)
    assert response.status_code == 202, response.text
    assert response.json()["id"] == signed["id"]
    status = await departments.poll_request(signed["id"])
    assert status["status"] == "accepted", status
    assert status["unit"] == "100000-SAT"
    answer = await departments.collector.answer(signed["id"])
    assert answer["type"] == "credit.request.accepted"
    record = await departments.record(signed["id"])
    assert record["status"] == "active"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"ce-subject": "91110000MA00000000"}, 401, "bad_signature"),  # an attribute changed after signing
        ({"ce-signature": None}, 401, "unsigned"),
        ({"ce-id": "abc%00def"}, 400, "schema_violation"),  # a NUL once percent-decoded
        ({"ce-id": None}, 400, "schema_violation"),
    ],
)
async def test_http_binary_mode_is_refused_like_a_structured_body(
    departments: Departments, change: dict[str, str | None], status: int, code: str
) -> None:
    signed = signed_designation()
    message = ce_http.to_binary_event(sdk_event(signed))
    headers = {**message.headers, **change}
    response = await departments.http.post(
        "/v1/requests", content=message.body, headers={k: v for k, v in headers.items() if v is not None}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["code"] for e in response.json()["errors"]] == [code]
    assert (await departments.http.get(f"/v1/requests/{signed['id']}")).status_code == 404  # nothing published
