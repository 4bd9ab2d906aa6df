"""Exactly-once under replay: reset the warning service's consumer group to the earliest offsets
and run it again. Its tables are unchanged and it publishes nothing: every input was recorded in
its inbox in the transaction that applied it, and what it skips unparsed it skips again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.messaging import topics
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.events import company, created, publish, removed
from tests.support.kafka_admin import end_offsets, reset_to_start
from tests.support.processes import ServiceProcess
from tests.support.replay import counter, digest, published_by

from .conftest import (
    GROUP,
    INPUTS,
    SCHEMA,
    caught_up,
    conduct_report,
    record,
    report,
    wait_warning_events,
)

pytestmark = pytest.mark.integration

OUTPUTS = [topics.WARNING_EVENTS, topics.UNIT_INBOX, topics.FEEDBACK, topics.DEADLETTER]
DIGEST = {
    "entries": "SELECT count(*), md5(coalesce(string_agg(designation_id || record::text || updated_at::text, ','"
    f" ORDER BY designation_id), '')) FROM {SCHEMA}.entries",
    "key_fields": "SELECT count(*), md5(coalesce(string_agg(code || key_field::text || updated_at::text, ','"
    f" ORDER BY code), '')) FROM {SCHEMA}.key_fields",
    "warnings": "SELECT count(*), md5(coalesce(string_agg(w::text, ',' ORDER BY subject_id), ''))"
    f" FROM {SCHEMA}.warnings w",
    "recommendations": "SELECT count(*), md5(coalesce(string_agg(r::text, ',' ORDER BY recommendation_id), ''))"
    f" FROM {SCHEMA}.recommendations r",
    "conduct_reports": "SELECT count(*), md5(coalesce(string_agg(c::text, ',' ORDER BY report_id), ''))"
    f" FROM {SCHEMA}.conduct_reports c",
    "inbox": f"SELECT count(*), '' FROM {SCHEMA}.inbox",
    "outbox": f"SELECT count(*), '' FROM {SCHEMA}.outbox",
}


async def test_replay_from_earliest_changes_nothing_and_publishes_nothing(
    stack: Settings,
    warning: ServiceProcess,
    kafka: AIOKafkaProducer,
    collector: Collector,
    admin: asyncpg.Connection,
) -> None:
    # Some history of every kind: listed, cleared, recommended, closed, rejected, dead-lettered.
    subject = company()
    entries = [record(subject, f) for f in ("taxation", "customs", "environment", "finance")]
    for rec in entries:
        await publish(kafka, created(rec))
    await wait_warning_events(collector, subject["id"], 2)
    serious = conduct_report(subject, "taxation", at=datetime.now(UTC))
    assert (await report(kafka, collector, serious))["type"] == "credit.request.accepted"
    rejected = conduct_report(subject, "customs")  # 110000-SAT is not a customs unit
    assert (await report(kafka, collector, rejected))["type"] == "credit.request.rejected"
    for rec in entries[:2]:
        await publish(kafka, removed(rec, "revoked"))
    await wait_warning_events(collector, subject["id"], 4)
    await kafka.send_and_wait(topics.CONDUCT_REPORTS, b"\x00not an event", key=b"garbage")
    await caught_up(stack)

    await warning.stop()  # a clean stop drains the outbox
    try:
        before = await digest(admin, DIGEST)
        assert before["outbox"][0] == 0
        assert before["warnings"][0] > 0
        assert before["recommendations"][0] > 0
        ends_before = await end_offsets(stack.kafka_bootstrap_servers, OUTPUTS)
        await reset_to_start(stack.kafka_bootstrap_servers, GROUP, INPUTS, warning.start_offsets[GROUP])
        await warning.start()
        await caught_up(stack, timeout=600)
        await asyncio.sleep(1.5)  # a relay round would have published anything written
        after = await digest(admin, DIGEST)
        assert after == before, "replay changed the service's tables"
        again = await published_by(stack.kafka_bootstrap_servers, "warning", OUTPUTS, ends_before)
        assert again == [], f"replay published {len(again)} events, e.g. {again[:1]}"
        async with warning.client() as http:
            metrics = (await http.get("/metrics")).text
        # Everything above came round again and the inbox dropped it (the label is the batch's first topic).
        assert counter(metrics, "credit_inbox_duplicates_total") >= len(entries) + 2 + 3, "nothing was replayed"
        assert counter(metrics, "credit_messages_published_total") == 0
    finally:
        if warning.proc is None or warning.proc.returncode is not None:
            await warning.start()
