"""Exactly-once under replay: reset the objection service's consumer group to the earliest offsets
and run it again. Its tables are unchanged and it publishes nothing: every input was recorded in
its inbox in the transaction that applied it."""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.clock import SHANGHAI
from credit_common.messaging import topics
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import publish, removed
from tests.support.kafka_admin import end_offsets, reset_to_start
from tests.support.processes import ServiceProcess, platform_clock_at
from tests.support.replay import counter, digest, published_by

from .conftest import (
    CLERK_PORT,
    GROUP,
    INPUTS,
    SCHEMA,
    accepted,
    apply_restoration,
    caught_up,
    decide_objection,
    decide_restoration,
    designated,
    file_objection,
    filing_time,
    first_overdue,
    record,
    rejected,
)

pytestmark = pytest.mark.integration

OUTPUTS = [topics.OBJECTION_EVENTS, topics.UNIT_INBOX, topics.FEEDBACK, topics.DEADLETTER]
DIGEST = {
    table: f"SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY {key}), '')) FROM {SCHEMA}.{table} t"
    for table, key in (
        ("designations", "designation_id"),
        ("objections", "objection_id"),
        ("applications", "application_id"),
        ("restoration_measures", "application_id, position"),
    )
} | {
    "inbox": f"SELECT count(*), '' FROM {SCHEMA}.inbox",
    "outbox": f"SELECT count(*), '' FROM {SCHEMA}.outbox",
}


async def test_replay_from_earliest_changes_nothing_and_publishes_nothing(
    stack: Settings,
    objection: ServiceProcess,
    kafka: AIOKafkaProducer,
    collector: Collector,
    admin: asyncpg.Connection,
) -> None:
    # Some history of every kind: opened, overdue, resolved, closed, rejected, dead-lettered.
    rec = await designated(kafka, stack, record())
    late = file_objection(rec, at=datetime(2026, 9, 30, 10, 0, tzinfo=SHANGHAI))
    async with platform_clock_at(objection, filing_time(late), CLERK_PORT):
        await accepted(kafka, collector, late)
    await first_overdue(collector, "credit.objection.overdue", "objection_id", late["id"])
    await accepted(kafka, collector, decide_objection(late["id"], "110000-SAT", "rejected"))
    application = apply_restoration(rec)
    await accepted(kafka, collector, application)
    await accepted(kafka, collector, decide_restoration(application["id"], "110108-SAT", "rejected"))
    samr = {"kind": "unit", "id": "110000-SAMR", "name": "AMR"}
    pending = file_objection(rec, source="unit/110000-SAMR", objector=samr)
    await accepted(kafka, collector, pending)
    assert await rejected(kafka, collector, decide_objection(pending["id"], "440106-SAT")) == [
        ("not_designating_unit", "source")
    ]
    await publish(kafka, removed(rec, "revoked"))
    await kafka.send_and_wait(topics.OBJECTION_REQUESTS, b"\x00not an event", key=b"garbage")
    await caught_up(stack)

    await objection.stop()  # a clean stop drains the outbox
    try:
        before = await digest(admin, DIGEST)
        assert before["outbox"][0] == 0
        assert before["objections"][0] >= 2
        assert before["applications"][0] >= 1
        ends_before = await end_offsets(stack.kafka_bootstrap_servers, OUTPUTS)
        await reset_to_start(stack.kafka_bootstrap_servers, GROUP, INPUTS, objection.start_offsets[GROUP])
        await objection.start()
        await caught_up(stack, timeout=600)
        await asyncio.sleep(6.0)  # a timer round and a relay round would have published anything written
        after = await digest(admin, DIGEST)
        assert after == before, "replay changed the service's tables"
        again = await published_by(stack.kafka_bootstrap_servers, "objection", OUTPUTS, ends_before)
        assert again == [], f"replay published {len(again)} events, e.g. {again[:1]}"
        async with objection.client() as http:
            metrics = (await http.get("/metrics")).text
        assert counter(metrics, "credit_inbox_duplicates_total") >= 8, "nothing was replayed"
        assert counter(metrics, "credit_messages_published_total") == 0
    finally:
        if objection.proc is None or objection.proc.returncode is not None:
            await objection.start()
