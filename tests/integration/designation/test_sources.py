"""Only the owner of an events topic speaks on it (contracts.md, Security): an objection outcome
that claims another source is dead-lettered `foreign_source` and removes nothing, whoever wrote
it: the objection service's own Kafka user (a leaked credential speaking for another service) or
the stack's; the cases service's user may not write the topic at all; the same outcome from the
objection service removes the entry."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError
from credit_common.contracts.envelope import CONTENT_TYPE, new_id
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.settings import get_settings

from .conftest import Departments, company, designate, platform_event, today

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("forger", ["platform/cases", "unit/110108-SAT", "platform/objection-service"])
async def test_an_objection_outcome_from_another_source_is_dead_lettered_and_removes_nothing(
    departments: Departments, forger: str
) -> None:
    record = await departments.designated(designate("black", "taxation-black", company()))
    designation_id = record["designation_id"]
    data = {
        "objection_id": new_id(),
        "designation_id": designation_id,
        "unit": record["unit"],
        "outcome": "upheld",
        "reasoning": "Forged.",
        "decided_on": today().isoformat(),
    }
    forged = platform_event("credit.objection.resolved", data, subject=record["subject"]["id"]) | {"source": forger}
    value, key = orjson.dumps(forged), str(forged["subject"]).encode()
    # With the cases service's credential the broker refuses the write; with the objection service's
    # own it lands, and the consumers refuse what it claims.
    with pytest.raises(TopicAuthorizationFailedError):
        await write_as("service:cases", topics.OBJECTION_EVENTS, value, key)
    await write_as("service:objection", topics.OBJECTION_EVENTS, value, key)
    # Every service reading the topic refuses it (cases and sharing too, when their suites run):
    # wait for the designation service's dead letter.
    dead = await departments.collector.wait_for(
        topics.DEADLETTER,
        lambda e: (
            e["data"]["topic"] == topics.OBJECTION_EVENTS
            and e["data"]["service"] == "designation"
            and forged["id"].encode() in raw(e)
        ),
    )
    assert all(d["data"]["error"].startswith("foreign_source") for d in dead)

    # The genuine outcome, published after the forgery on the same partition, is applied: the
    # forgery did not stop the consumer and did not use up anything.
    genuine = platform_event(
        "credit.objection.resolved", {**data, "objection_id": new_id()}, subject=record["subject"]["id"]
    )
    await departments.publish(topics.OBJECTION_EVENTS, genuine)
    (removed,) = await departments.collector.wait_for(
        topics.DESIGNATION_EVENTS,
        lambda e: e["type"] == "credit.designation.removed" and e["data"]["record"]["designation_id"] == designation_id,
    )
    assert removed["causationid"] == genuine["id"]
    assert len(departments.events_of(designation_id, "credit.designation.removed")) == 1


def raw(dead: dict[str, Any]) -> bytes:
    return base64.b64decode(dead["data"].get("value_b64") or "")


async def write_as(principal: str, topic: str, value: bytes, key: bytes) -> None:
    """One record, written with `principal`'s Kafka user (from its credentials file)."""
    producer = AIOKafkaProducer(**kafka_options(settings=get_settings().as_principal(principal)))
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=[("content-type", CONTENT_TYPE.encode())])
    finally:
        await producer.stop()
