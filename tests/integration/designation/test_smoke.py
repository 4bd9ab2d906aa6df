"""The designation service through both ingresses: Kafka and HTTP."""

from __future__ import annotations

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.messaging import topics

from tests.support.collector import Collector

from .conftest import company, designate, post, send

pytestmark = pytest.mark.integration


async def test_designate_through_kafka_and_http(
    kafka: AIOKafkaProducer, http: httpx.AsyncClient, collector: Collector
) -> None:
    via_kafka = designate("black", "taxation-black", company())
    rid = await send(kafka, via_kafka)
    answer = await collector.answer(rid)
    assert answer["type"] == "credit.request.accepted", answer
    assert answer["_key"] == "100000-SAT"
    (created,) = await collector.wait_for(
        topics.DESIGNATION_EVENTS, lambda e: e["data"]["record"]["designation_id"] == rid
    )
    assert created["type"] == "credit.designation.created"
    assert created["_key"] == via_kafka["subject"]

    via_http = designate("red", "taxation-red", company())
    response = await post(http, via_http)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    answer = await collector.answer(via_http["id"])
    assert answer["type"] == "credit.request.accepted"
    status = (await http.get(f"/v1/requests/{via_http['id']}")).json()
    assert status["status"] in ("pending", "accepted")
    record = (await http.get(f"/v1/designations/{via_http['id']}")).json()
    assert record["list"] == "red"
    assert record["status"] == "active"
