"""Acceptance: replay of its input from the earliest offsets changes nothing and publishes nothing
new. The sharing instance is stopped (no other member of group `sharing` may be alive), the group
is reset to the earliest offsets of its three input topics, the service starts again and reads
everything once more: its tables and the list-change topics stay as they were.

Other services' tests share the broker: events that arrive on the input topics while this test
runs are new input, not replay. They are read back and what they legitimately changed (their
entries, their changes, their output messages) is left out of the comparison."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from credit_common.contracts.envelope import new_id
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.settings import Settings

from tests.support.events import company, person
from tests.support.kafka_admin import end_offsets, reset_to_start
from tests.support.processes import ServiceProcess

from .conftest import (
    GROUP,
    INPUTS,
    OUTPUTS,
    SCHEMA,
    amended,
    caught_up,
    created,
    event,
    objection_opened,
    objection_resolved,
    publish,
    record,
    removed,
)

pytestmark = pytest.mark.integration

TABLES = ("inputs", "history", "entries", "changes", "change_seq", "inbox")
# Each digest leaves out what new input (not replay) may have changed: the ids of new input events
# (left_events), the entries they touch (left_entries), the subjects whose warning-list entry they
# touch (left_subjects). Anti-joins against those tables, not `<> ALL(array)`: new input can be a
# department's backfill of a hundred thousand events.
DIGESTS = {
    "inputs": """SELECT count(*), md5(coalesce(string_agg(event_id || entry_id || arrival || kind || recorded_at
                 || coalesce(reason, '') || data::text, ',' ORDER BY event_id), ''))
                 FROM {inputs} t WHERE NOT EXISTS (SELECT 1 FROM left_events l WHERE l.id = t.event_id)""",
    "history": """SELECT count(*), md5(coalesce(string_agg(entry_id || version || status || entry::text
                 || record::text || valid_from || coalesce(valid_to::text, '') || recorded_at
                 || coalesce(superseded_at::text, '') || cause, ',' ORDER BY entry_id, version), ''))
                 FROM {history} t WHERE NOT EXISTS (SELECT 1 FROM left_entries l WHERE l.id = t.entry_id)
                 AND NOT (list = 'warning' AND EXISTS (SELECT 1 FROM left_subjects l WHERE l.id = t.subject_id))""",
    "entries": """SELECT count(*), md5(coalesce(string_agg(entry_id || status || entry::text || valid_from
                 || coalesce(valid_to::text, '') || recorded_at || coalesce(seq::text, ''), ','
                 ORDER BY entry_id), ''))
                 FROM {entries} t WHERE NOT EXISTS (SELECT 1 FROM left_entries l WHERE l.id = t.entry_id)
                 AND NOT (list = 'warning' AND EXISTS (SELECT 1 FROM left_subjects l WHERE l.id = t.subject_id))""",
    "changes": """SELECT count(*), md5(coalesce(string_agg(seq || event_id || type || public_sent || data::text, ','
                 ORDER BY seq), ''))
                 FROM {changes} t WHERE NOT EXISTS (SELECT 1 FROM left_events l WHERE l.id = t.cause)""",
    "seqs": """SELECT (SELECT value FROM {change_seq})
                 - (SELECT count(*) FROM {changes} t WHERE EXISTS (SELECT 1 FROM left_events l WHERE l.id = t.cause)),
                 ''""",
    "inbox": """SELECT count(*), '' FROM {inbox} t
                 WHERE NOT EXISTS (SELECT 1 FROM left_events l WHERE l.id = t.event_id)""",
}


async def keep_before(admin: asyncpg.Connection) -> None:
    """A copy of the service's tables as they are, on this connection (temporary tables)."""
    for table in TABLES:
        await admin.execute(f"CREATE TEMP TABLE before_{table} AS SELECT * FROM {SCHEMA}.{table}")
        await admin.execute(f"ANALYZE pg_temp.before_{table}")


async def leave_out(admin: asyncpg.Connection, ids: dict[str, list[str]]) -> None:
    """What the digests leave out, as temporary tables on this connection."""
    for name, values in ids.items():
        await admin.execute(f"DROP TABLE IF EXISTS pg_temp.left_{name}")
        await admin.execute(f"CREATE TEMP TABLE left_{name} (id text PRIMARY KEY)")
        await admin.copy_records_to_table(f"left_{name}", records=[(v,) for v in set(values)])
        await admin.execute(f"ANALYZE pg_temp.left_{name}")


async def digest(admin: asyncpg.Connection, *, before: bool = False) -> dict[str, tuple[Any, ...]]:
    names = {t: f"pg_temp.before_{t}" if before else f"{SCHEMA}.{t}" for t in TABLES}
    out = {}
    for name, sql in DIGESTS.items():
        out[name] = tuple(await admin.fetchrow(sql.format(**names)))
    return out


async def committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def read_between(
    bootstrap: str, start: dict[TopicPartition, int], end: dict[TopicPartition, int]
) -> list[ConsumerRecord]:
    """Every record from `start` (inclusive) to `end` (exclusive), per partition."""
    wanted = {tp: (start.get(tp, 0), off) for tp, off in end.items() if off > start.get(tp, 0)}
    if not wanted:
        return []
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        for tp, (first, _) in wanted.items():
            consumer.seek(tp, first)
        records: list[ConsumerRecord] = []
        done: set[TopicPartition] = set()
        deadline = asyncio.get_running_loop().time() + 60
        while len(done) < len(wanted):
            assert asyncio.get_running_loop().time() < deadline, "could not read the range back"
            for tp, rs in (await consumer.getmany(timeout_ms=500)).items():
                for r in rs:
                    if r.offset < wanted[tp][1]:
                        records.append(r)
                if await consumer.position(tp) >= wanted[tp][1]:
                    done.add(tp)
        return records
    finally:
        await consumer.stop()


def touched_by(records: list[ConsumerRecord]) -> dict[str, list[str]]:
    """The ids of new input events (and the inbox keys of unreadable ones), the entries and the
    warning-list subjects they touch."""
    events: list[str] = []
    entries: list[str] = []
    subjects: list[str] = []
    for r in records:
        events.append(f"{r.topic}:{r.partition}:{r.offset}")
        try:
            doc = orjson.loads(r.value)
            data = doc.get("data") or {}
            events.append(str(doc["id"]))
        except Exception:
            continue
        if not isinstance(data, dict):
            continue
        rec = data.get("record")
        if isinstance(rec, dict) and "designation_id" in rec:
            entries.append(str(rec["designation_id"]))
        if "designation_id" in data:
            entries.append(str(data["designation_id"]))
        if isinstance(data.get("subject"), dict):
            subjects.append(str(data["subject"].get("id")))
    return {"events": events, "entries": entries, "subjects": subjects}


async def some_history(kafka: AIOKafkaProducer) -> None:
    """A little of every input: records created, amended and removed, objections, warnings, and
    messages that cannot be read at all."""
    at = datetime.now(UTC) - timedelta(days=1)
    rec = record(company("Replay Co."))
    someone = person("Replay Person")
    other = record(someone, list_="key_scrutiny", public=False)
    await publish(kafka, created(rec, at))
    await publish(kafka, created(other, at))
    await publish(kafka, amended({**rec, "effective_to": "2026-01-31"}, at + timedelta(hours=1), {}))
    oid = new_id()
    await publish(kafka, objection_opened(other, oid, at + timedelta(hours=2)))
    await publish(kafka, objection_resolved(other, oid, at + timedelta(hours=3), "rejected"))
    await publish(kafka, removed(rec, at + timedelta(hours=4)))
    listing = {
        "subject": someone,
        "fields": ["taxation", "customs", "environment"],
        "designation_ids": [other["designation_id"]],
        "since": date.today().isoformat(),
    }
    await publish(kafka, event("platform/warning", "credit.warning.listed", listing, subject=someone["id"], at=at))
    cleared = {"subject": someone, "remaining_fields": ["taxation"]}
    await publish(
        kafka,
        event("platform/warning", "credit.warning.cleared", cleared, subject=someone["id"], at=at + timedelta(hours=5)),
    )
    await kafka.send_and_wait(topics.WARNING_EVENTS, b"\x00 not an event", key=b"garbage")
    await kafka.send_and_wait(topics.DESIGNATION_EVENTS, b'{"specversion": "1.0"}', key=b"garbage")


@pytest.mark.timeout(1200)  # it reads every input event again: the whole topic history
async def test_replay_from_earliest_changes_nothing_and_publishes_nothing(
    stack: Settings, sharing: ServiceProcess, kafka: AIOKafkaProducer, admin: asyncpg.Connection
) -> None:
    bootstrap = stack.kafka_bootstrap_servers
    await some_history(kafka)
    await caught_up(stack)
    await sharing.stop()  # the only member of the group (a clean stop drains the outbox)
    try:
        assert await admin.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox") == 0
        # What the service had read when it stopped (it commits offsets after its transaction):
        # anything after that is new input, even if it arrived before the reset.
        inputs_before = await committed(bootstrap, GROUP)
        outputs_before = await end_offsets(bootstrap, OUTPUTS)
        dead_before = await end_offsets(bootstrap, [topics.DEADLETTER])
        await keep_before(admin)

        await reset_to_start(bootstrap, GROUP, INPUTS, sharing.start_offsets[GROUP])
        await sharing.start()
        await caught_up(stack, timeout=600)
        await asyncio.sleep(1.5)  # a relay round would have published anything written

        # What arrived meanwhile is new input: its effects are left out of the comparison.
        new_input = await read_between(bootstrap, inputs_before, await end_offsets(bootstrap, INPUTS))
        touched = touched_by(new_input)
        await leave_out(admin, touched)
        assert await digest(admin) == await digest(admin, before=True), "the replay changed the tables"

        new_events = set(touched["events"])
        for r in await read_between(bootstrap, outputs_before, await end_offsets(bootstrap, OUTPUTS)):
            doc = orjson.loads(r.value)
            assert doc.get("causationid") in new_events, f"the replay published {doc['type']} {doc['id']}"
        for r in await read_between(bootstrap, dead_before, await end_offsets(bootstrap, [topics.DEADLETTER])):
            data = orjson.loads(r.value)["data"]
            if data["service"] == "sharing":
                tp = TopicPartition(data["topic"], data["partition"])
                assert data["offset"] >= inputs_before.get(tp, 0), f"the replay dead-lettered {data} again"
    finally:
        if sharing.proc is None or sharing.proc.returncode is not None:
            await sharing.start()
