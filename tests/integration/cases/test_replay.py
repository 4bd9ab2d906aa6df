"""Exactly-once under replay: reset the cases service's consumer group to the earliest offsets and
run it again. Its tables (cases and tallies included) are unchanged and it publishes nothing: every
input was recorded in its inbox in the transaction that applied it."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.contracts.envelope import new_id
from credit_common.messaging import topics
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import company, publish, record, removed, today
from tests.support.kafka_admin import end_offsets, reset_to_start
from tests.support.processes import ServiceProcess
from tests.support.replay import counter, digest, published_by

from .conftest import (
    GROUP,
    INPUTS,
    SCHEMA,
    accepted,
    caught_up,
    designated,
    objection_event,
    recorded,
    rejected,
    report,
)

pytestmark = pytest.mark.integration

OUTPUTS = [topics.CASES_EVENTS, topics.FEEDBACK, topics.DEADLETTER]
DIGEST = {
    table: f"SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY {key}), '')) FROM {SCHEMA}.{table} t"
    for table, key in (
        ("designations", "designation_id"),
        ("objections", "objection_id"),
        ("cases", "case_id"),
        ("case_tallies", "year, month, province, unit, field, list, measure"),
        ("designation_tallies", "year, province, list"),
    )
} | {
    "inbox": f"SELECT count(*), '' FROM {SCHEMA}.inbox",
    "outbox": f"SELECT count(*), '' FROM {SCHEMA}.outbox",
}


async def test_replay_from_earliest_changes_nothing_and_publishes_nothing(
    stack: Settings,
    cases: ServiceProcess,
    kafka: AIOKafkaProducer,
    collector: Collector,
    admin: asyncpg.Connection,
) -> None:
    # Some history of every kind: cases recorded and refused, an objection opened and resolved,
    # an entry removed, a dead letter.
    rec = record(company(), list_="black", field="taxation", unit="110108-SAT")
    await designated(kafka, rec)
    await caught_up(stack)  # the entry is known before a report names it (two topics, no order between them)
    ev = report(rec, "440000-GAC", "tax-black-customs-inspection", today(), media=1, typical=True)
    await accepted(kafka, collector, ev)
    await recorded(collector, ev["id"])
    oid = new_id()
    await publish(kafka, objection_event("credit.objection.opened", rec, oid), topics.OBJECTION_EVENTS)
    await caught_up(stack)
    assert await rejected(kafka, collector, report(rec, "440000-GAC", "tax-black-customs-inspection", today())) == [
        ("suspended_under_objection", "designation_id")
    ]
    await publish(kafka, objection_event("credit.objection.resolved", rec, oid), topics.OBJECTION_EVENTS)
    await publish(kafka, removed(rec, "revoked"))
    await kafka.send_and_wait(topics.ENFORCEMENT_ACTIONS, b"\x00not an event", key=b"garbage")
    await caught_up(stack)

    await cases.stop()  # a clean stop drains the outbox
    try:
        before = await digest(admin, DIGEST)
        assert before["outbox"][0] == 0
        assert before["cases"][0] >= 1
        assert before["case_tallies"][0] >= 1
        ends_before = await end_offsets(stack.kafka_bootstrap_servers, OUTPUTS)
        await reset_to_start(stack.kafka_bootstrap_servers, GROUP, INPUTS, cases.start_offsets[GROUP])
        await cases.start()
        await caught_up(stack, timeout=600)
        await cases.settled()  # what the replay wrote to its outbox (nothing) is on the topics
        after = await digest(admin, DIGEST)
        assert after == before, "replay changed the service's tables"
        again = await published_by(stack.kafka_bootstrap_servers, "cases", OUTPUTS, ends_before)
        assert again == [], f"replay published {len(again)} events, e.g. {again[:1]}"
        async with cases.client() as http:
            metrics = (await http.get("/metrics")).text
        assert counter(metrics, "credit_inbox_duplicates_total") >= 6, "nothing was replayed"
        assert counter(metrics, "credit_messages_published_total") == 0
    finally:
        if cases.proc is None or cases.proc.returncode is not None:
            await cases.start()
