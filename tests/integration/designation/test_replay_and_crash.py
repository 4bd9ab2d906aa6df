"""Exactly-once under replay and under kill -9, with the designation service as a real process.

- Replay: reset the service's consumer groups to the earliest offsets and run it again: its tables
  are unchanged and it publishes no new event.
- Crash: kill -9 in the middle of a 100,000-request backfill, then restart: every request has
  exactly one answer on the feedback topic and every designation exists exactly once (the same
  event, same id, may appear twice on a topic; two different events for one change may not)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.contracts.envelope import CONTENT_TYPE
from credit_common.messaging import topics
from credit_common.settings import Settings

from tests.support.collector import Collector
from tests.support.kafka_admin import end_offsets, reset_to_start, wait_caught_up
from tests.support.processes import ServiceProcess
from tests.support.replay import digest
from tests.support.subjects import new_uscc

from .conftest import FEEDBACK_GROUP, GROUP, INSTANCE, SCHEMA, company, designate, person, request, send

pytestmark = pytest.mark.integration

GROUPS = {
    GROUP: [topics.DESIGNATION_REQUESTS, topics.OBJECTION_EVENTS, topics.REFERENCE],
    FEEDBACK_GROUP: [topics.FEEDBACK],
}
OUTPUTS = [topics.DESIGNATION_EVENTS, topics.FEEDBACK, topics.DEADLETTER]

DIGEST = {
    "designations": "SELECT count(*), md5(coalesce(string_agg(designation_id || status || record::text"
    f" || updated_at::text, ',' ORDER BY designation_id), '')) FROM {SCHEMA}.designations",
    "requests": "SELECT count(*), md5(coalesce(string_agg(request_id || status || coalesce(errors::text, '')"
    f" || coalesce(answered_at::text, ''), ',' ORDER BY request_id), '')) FROM {SCHEMA}.requests",
    "inbox": f"SELECT count(*), '' FROM {SCHEMA}.inbox",
    "outbox": f"SELECT count(*), '' FROM {SCHEMA}.outbox",
}


async def test_replay_from_earliest_changes_nothing_and_publishes_nothing(
    stack: Settings,
    designation: ServiceProcess,
    kafka: AIOKafkaProducer,
    collector: Collector,
    admin: asyncpg.Connection,
) -> None:
    # Some history of every kind: accepted, rejected, superseded, revoked, amended, dead-lettered.
    subject = company()
    red = await send(kafka, designate("red", "taxation-red", subject))
    black = await send(kafka, designate("black", "taxation-black", subject))
    rejected = await send(kafka, designate("red", "taxation-red", subject))
    someone = person()
    ks = await send(kafka, designate("key_scrutiny", "taxation-key_scrutiny", someone))
    for rid in (red, black, rejected, ks):
        await collector.answer(rid)
    amend = await send(
        kafka,
        request(
            "credit.designation.amend",
            {"designation_id": ks, "changes": {"facts": "Corrected facts."}, "reason": "clerical error"},
            subject=someone["id"],
        ),
    )
    revoke = await send(
        kafka,
        request(
            "credit.designation.remove",
            {
                "designation_id": black,
                "reason": "revoked",
                "decision": {"document_no": "R-1", "decided_on": "2026-11-25", "facts": "Decision quashed."},
            },
            subject=subject["id"],
        ),
    )
    await kafka.send_and_wait(topics.DESIGNATION_REQUESTS, b"\x00not an event", key=b"garbage")
    for rid in (amend, revoke):
        await collector.answer(rid)
    await wait_caught_up(stack.kafka_bootstrap_servers, GROUP, GROUPS[GROUP])
    await wait_caught_up(stack.kafka_bootstrap_servers, FEEDBACK_GROUP, GROUPS[FEEDBACK_GROUP])

    await designation.stop()  # a clean stop drains the outbox
    try:
        before = await digest(admin, DIGEST)
        assert before["outbox"][0] == 0
        ends_before = await end_offsets(stack.kafka_bootstrap_servers, OUTPUTS)
        for group, group_topics in GROUPS.items():
            await reset_to_start(stack.kafka_bootstrap_servers, group, group_topics, designation.start_offsets[group])
        await designation.start()
        for group, group_topics in GROUPS.items():
            await wait_caught_up(stack.kafka_bootstrap_servers, group, group_topics, timeout=300)
        await designation.settled()  # what the replay wrote to its outbox (nothing) is on the topics
        after = await digest(admin, DIGEST)
        assert after == before, "replay changed the service's tables"
        assert await end_offsets(stack.kafka_bootstrap_servers, OUTPUTS) == ends_before, "replay published events"
    finally:
        if designation.proc is None or designation.proc.returncode is not None:
            await designation.start()


BACKFILL = 100_000


async def test_kill_minus_9_in_a_backfill_loses_nothing_and_duplicates_nothing(
    stack: Settings,
    designation: ServiceProcess,
    kafka: AIOKafkaProducer,
    collector: Collector,
    admin: asyncpg.Connection,
) -> None:
    await designation.stop()  # this test controls the only instance
    rng = random.Random(uuid.uuid4().int)
    at = datetime.now(UTC)
    batch = uuid.uuid4().hex[:8]
    ids: list[str] = []
    futures = []
    for i in range(BACKFILL):
        subject = {"kind": "legal_person", "scheme": "uscc", "id": new_uscc(rng), "name": f"Backfill {batch} {i}"}
        ev = designate("black", "taxation-black", subject)
        ev["time"] = (at + timedelta(microseconds=i)).isoformat()
        ids.append(ev["id"])
        futures.append(
            await kafka.send(
                topics.DESIGNATION_REQUESTS,
                orjson.dumps(ev),
                key=subject["id"].encode(),
                headers=[("content-type", CONTENT_TYPE.encode())],
            )
        )
    await asyncio.gather(*futures)
    wanted = set(ids)

    def answered() -> int:
        return len({(e.get("data") or {}).get("request_id") for e in collector.events[topics.FEEDBACK]} & wanted)

    crashing = ServiceProcess("designation", 18131, instance=INSTANCE)
    await crashing.start()
    deadline = asyncio.get_running_loop().time() + 300
    while answered() < BACKFILL // 3:
        assert asyncio.get_running_loop().time() < deadline, f"only {answered()} answered"
        await asyncio.sleep(0.05)
    await crashing.kill()
    at_kill = answered()
    assert at_kill < BACKFILL, "the kill came after the backfill had finished: make it larger"

    try:
        await designation.start()
        deadline = asyncio.get_running_loop().time() + 600
        while answered() < BACKFILL:
            assert asyncio.get_running_loop().time() < deadline, f"only {answered()} of {BACKFILL} answered"
            await asyncio.sleep(0.2)
        await designation.settled(timeout=300)
        await collector.settled(topics.FEEDBACK)  # a second answer to anything would be read by now
    finally:
        if designation.proc is None or designation.proc.returncode is not None:
            await designation.start()

    answers: dict[str, set[str]] = defaultdict(set)
    kinds: dict[str, set[str]] = defaultdict(set)
    for e in collector.events[topics.FEEDBACK]:
        rid = (e.get("data") or {}).get("request_id")
        if rid in wanted:
            answers[rid].add(e["id"])
            kinds[rid].add(e["type"])
    assert set(answers) == wanted, "every request has an answer"
    assert all(len(v) == 1 for v in answers.values()), "exactly one answer (one event id) per request"
    assert all(v == {"credit.request.accepted"} for v in kinds.values())

    created: dict[str, set[str]] = defaultdict(set)
    for e in collector.where(
        topics.DESIGNATION_EVENTS,
        lambda e: e["type"] == "credit.designation.created" and e["data"]["record"]["designation_id"] in wanted,
    ):
        created[e["data"]["record"]["designation_id"]].add(e["id"])
    assert set(created) == wanted, "every designation was announced"
    assert all(len(v) == 1 for v in created.values()), "one created event (one id) per designation"
    rows = await admin.fetchval(
        f"SELECT count(*) FROM {SCHEMA}.designations WHERE designation_id = ANY($1::text[])", ids
    )
    assert rows == BACKFILL, "every designation exists exactly once"
    print(f"\nkill -9 after {at_kill:,} of {BACKFILL:,} answers; all {BACKFILL:,} answered exactly once")
