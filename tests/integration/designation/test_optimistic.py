"""The designation consumer's optimistic path: a batch read without a lock and written in one
statement that checks the read still holds. Through the running service (batches do take it) and
against the store on a schema of its own (a read that no longer holds writes nothing)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.db.outbox import OutboxMessage
from credit_common.messaging.apply import SEEN_AND_READ_SQL

from services.designation.store import READ_FOR_BATCH, BatchWrite, DesignationStore, record_of
from tests.support.collector import Collector

from .conftest import company, designate, send

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "designation" / "migrations"
READ = SEEN_AND_READ_SQL.format(READ_FOR_BATCH)


def batches(metrics: str, path: str) -> float:
    """credit_consumer_batches_total of the requests consumer's topics, for one path."""
    total = 0.0
    for m in re.finditer(r"^credit_consumer_batches_total\{(.*?)\} (\S+)$", metrics, re.M):
        if f'path="{path}"' in m.group(1):
            total += float(m.group(2))
    return total


async def test_request_batches_take_the_optimistic_path(
    kafka: AIOKafkaProducer, http: httpx.AsyncClient, collector: Collector
) -> None:
    before = (await http.get("/metrics")).text
    rid = await send(kafka, designate("black", "taxation-black", company()))
    assert (await collector.answer(rid))["type"] == "credit.request.accepted"
    after = (await http.get("/metrics")).text
    assert batches(after, "optimistic") > batches(before, "optimistic")


async def _a_record(http: httpx.AsyncClient, kafka: AIOKafkaProducer, collector: Collector) -> dict[str, Any]:
    """A real designation record, as the service made it."""
    rid = await send(kafka, designate("red", "taxation-red", company()))
    assert (await collector.answer(rid))["type"] == "credit.request.accepted"
    response = await http.get(f"/v1/designations/{rid}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _read(conn: asyncpg.Connection, ids: list[str], subjects: list[str]) -> tuple[list[Any], list[str]]:
    row = await conn.fetchrow(READ, [], ids, subjects)
    assert row is not None
    assert row["seen"] is False
    return list(row["records"]), list(row["versions"])


async def _counts(conn: asyncpg.Connection) -> tuple[int, int, int]:
    return (
        await conn.fetchval("SELECT count(*) FROM inbox"),
        await conn.fetchval("SELECT count(*) FROM outbox"),
        await conn.fetchval("SELECT count(*) FROM requests"),
    )


async def test_a_write_whose_read_no_longer_holds_writes_nothing(
    schema_factory: Callable, http: httpx.AsyncClient, kafka: AIOKafkaProducer, collector: Collector
) -> None:
    doc = await _a_record(http, kafka, collector)
    record = record_of(doc)
    pool = await schema_factory(migrations=MIGRATIONS)
    at = datetime.now(UTC)
    async with pool.acquire() as conn, pool.acquire() as other:
        store = DesignationStore(conn)
        await store.write_batch(BatchWrite(new=[(record, doc, at, at)]))
        ids, subjects = [record.designation_id], [record.subject.id]

        def answered(request_id: str) -> tuple[Any, ...]:
            return (request_id, "credit.designation.remove", "100000-SAT", "accepted", ids[0], None, "x", at)

        def removal(key: str, versions: list[str]) -> BatchWrite:
            removed = record.model_copy(update={"status": "removed"})
            return BatchWrite(
                changed=[(removed, {**doc, "status": "removed"}, at)],
                outbox=[OutboxMessage("t", None, b"{}")],
                answers=[answered(key)],
                inbox=([key], ["t"], [None]),
                read=(ids, subjects, versions),
            )

        # The row changes between the read and the write: the write fails whole.
        docs, versions = await _read(conn, ids, subjects)
        assert [d["designation_id"] for d in docs] == [record.designation_id] * 2  # by id and as the subject's
        await other.execute("UPDATE designations SET updated_at = now() WHERE designation_id = $1", ids[0])
        with pytest.raises(asyncpg.SerializationError):
            await store.write_batch(removal("k1", versions))
        assert await _counts(conn) == (0, 0, 0)
        assert await conn.fetchval("SELECT status FROM designations WHERE designation_id = $1", ids[0]) == "active"

        # Read again, nothing in between: the statement locks, checks and changes the same rows.
        _, versions = await _read(conn, ids, subjects)
        await store.write_batch(removal("k1", versions))
        assert await _counts(conn) == (1, 1, 1)
        assert await conn.fetchval("SELECT status FROM designations WHERE designation_id = $1", ids[0]) == "removed"

        # An inbox key another consumer recorded meanwhile: the write fails whole too.
        _, versions = await _read(conn, ids, subjects)
        with pytest.raises(asyncpg.UniqueViolationError):
            await store.write_batch(removal("k1", versions))
        assert await _counts(conn) == (1, 1, 1)

        # A new active entry of a subject the rules found none for (the red/black exclusion read).
        fresh = record.model_copy(update={"designation_id": "D-NEW-" + ids[0][-8:]})
        _, versions = await _read(conn, [], [record.subject.id])
        assert versions == []  # the first one is removed now
        await DesignationStore(other).write_batch(
            BatchWrite(new=[(fresh, {**doc, "designation_id": fresh.designation_id}, at, at)])
        )
        with pytest.raises(asyncpg.SerializationError):
            await store.write_batch(
                BatchWrite(
                    answers=[answered("k2")], inbox=(["k2"], ["t"], [None]), read=([], [record.subject.id], versions)
                )
            )
        assert await _counts(conn) == (1, 1, 1)


async def test_the_database_holds_one_active_entry_per_subject_and_standard(
    schema_factory: Callable, http: httpx.AsyncClient, kafka: AIOKafkaProducer, collector: Collector
) -> None:
    """Two instances judging one subject from two partitions can each read no entry and both
    insert one: the deferred exclusion constraint refuses the second at its commit (the consumer
    then applies that batch again, and its read answers `already_designated`)."""
    doc = await _a_record(http, kafka, collector)
    record = record_of(doc)
    pool = await schema_factory(migrations=MIGRATIONS)
    at = datetime.now(UTC)
    twin = record.model_copy(update={"designation_id": "D-TWIN-" + record.designation_id[-8:]})
    twin_doc = {**doc, "designation_id": twin.designation_id}
    async with pool.acquire() as conn, pool.acquire() as other:
        await DesignationStore(conn).write_batch(BatchWrite(new=[(record, doc, at, at)]))
        with pytest.raises(asyncpg.ExclusionViolationError):
            await DesignationStore(other).write_batch(BatchWrite(new=[(twin, twin_doc, at, at)]))
        assert await conn.fetchval("SELECT count(*) FROM designations") == 1
        # Removed and designated again in one statement: judged on the end state, so allowed.
        removed = record.model_copy(update={"status": "removed"})
        await DesignationStore(conn).write_batch(
            BatchWrite(new=[(twin, twin_doc, at, at)], changed=[(removed, {**doc, "status": "removed"}, at)])
        )
        assert await conn.fetchval("SELECT count(*) FROM designations WHERE status = 'active'") == 1
