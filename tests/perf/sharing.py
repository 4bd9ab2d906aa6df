"""Sharing service benchmarks (issue 4), with the service as a real process:

- projection: N `credit.designation.created` events (whole records, as the designation service
  publishes them; a fifth of them natural persons, half black, half key scrutiny) pre-filled on
  the 12-partition events topic, drained to entries, history and changes committed and both
  list-change topics published; events/s beside raw aiokafka consume of the same messages.
  Goal: at least 0.5 x raw consume.
- then the read path over 2,000,000 active entries, in consecutive rounds on a quiet machine
  (subject lookups at 1,000/s and both exports: reads.py).

The entries beyond the projected ones are cloned in SQL from the projected rows (new entry and
subject ids, otherwise the same documents), so the read benchmarks run over two million rows of
exactly the shape the service writes without projecting two million events first."""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from credit_common.contracts.envelope import CONTENT_TYPE, new_id
from credit_common.db.pool import init_connection as pool_codecs
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.settings import Settings

from tests.support.subjects import new_resident_id, new_uscc

from . import reads
from .foundation import progress, raw_consume
from .groups import begin_at_the_end, behind
from .harness import CpuShare, Result, ServiceUnderTest, checkpoint_to_disk, console

PORT = 28102
LISTS = ("black", "key_scrutiny")


def created_event(rng: random.Random, i: int, at: datetime) -> tuple[bytes, bytes]:
    """A `credit.designation.created` event as the designation service publishes it."""
    list_ = LISTS[i % 2]
    if i % 5 == 0:
        sid = new_resident_id(rng)
        subject = {"kind": "natural_person", "scheme": "resident_id", "id": sid, "name": f"Zhao Lei {i}"}
    else:
        sid = new_uscc(rng)
        subject = {
            "kind": "legal_person",
            "scheme": "uscc",
            "id": sid,
            "name": f"Bench Trading Co. {i}",
            "legal_representative": "Wang Fang",
        }
    today = at.date()
    record = {
        "designation_id": new_id(),
        "list": list_,
        "field": "taxation",
        "standard": f"taxation-{list_}",
        "standard_version": 1,
        "subject": subject,
        "unit": "100000-SAT",
        "unit_level": "national",
        "region": "100000",
        "decision": {
            "document_no": f"税稽罚〔2026〕{i}号",
            "decided_on": today.isoformat(),
            "facts": "Issued false VAT invoices of RMB 1,250,000 over two years.",
            "legal_basis": "Tax Collection Administration Law, art. 63",
        },
        "effective_from": today.isoformat(),
        "effective_to": (today + timedelta(days=3 * 365)).isoformat(),
        "public": True,
        "status": "active",
    }
    ev = {
        "specversion": "1.0",
        "id": new_id(),
        "source": "platform/designation",
        "type": "credit.designation.created",
        "time": at.isoformat(),
        "subject": sid,
        "datacontenttype": "application/json",
        "data": {"record": record},
    }
    return sid.encode(), orjson.dumps(ev)


async def fill(bootstrap: str, n: int) -> None:
    producer = AIOKafkaProducer(
        **kafka_options(bootstrap), enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    rng = random.Random(20261126)
    at = datetime.now(UTC)
    headers = [("content-type", CONTENT_TYPE.encode())]
    try:
        with progress() as bar:
            task = bar.add_task("fill designation events", total=n)
            for start in range(0, n, 20_000):
                futures = []
                for i in range(start, min(n, start + 20_000)):
                    key, value = created_event(rng, i, at)
                    futures.append(
                        await producer.send(topics.DESIGNATION_EVENTS, value=value, key=key, headers=headers)
                    )
                await asyncio.gather(*futures)
                bar.update(task, completed=min(n, start + 20_000))
    finally:
        await producer.stop()


async def project(db: asyncpg.Connection, svc: ServiceUnderTest, n: int, seq_before: int) -> tuple[float, str]:
    """Start the service; wait until n more changes are committed and its outbox is empty (both
    topics published); events/s from process start, and the cores each process used meanwhile."""
    cores = CpuShare({"driver": [os.getpid()]})
    cores.start()
    await svc.start()
    cores.add("sharing", svc.pid)
    with progress() as bar:
        task = bar.add_task("sharing projection", total=n)
        while True:
            seq = await db.fetchval("SELECT value FROM sharing.change_seq") - seq_before
            bar.update(task, completed=seq)
            if seq >= n and await db.fetchval("SELECT count(*) FROM sharing.outbox") == 0:
                rate = n / (time.perf_counter() - svc.started_at)
                return rate, CpuShare.line(cores.stop())
            await asyncio.sleep(0.25)


HISTORY_COLUMNS = [
    "entry_id", "version", "list", "subject_id", "public", "status", "reason", "entry", "record",
    "valid_from", "valid_to", "recorded_at", "superseded_at", "cause",
]  # fmt: skip
ENTRY_COLUMNS = [
    "entry_id", "list", "subject_id", "field", "standard", "unit", "region", "public", "status", "reason",
    "under_objection", "entry", "valid_from", "valid_to", "recorded_at", "seq",
]  # fmt: skip
SOURCE_ROWS = """
SELECT subject_id, public, entry, record, valid_from, valid_to, recorded_at FROM sharing.history
 WHERE list = $1 AND version = 1 AND status = 'active' AND entry_id NOT LIKE 'seed-%'
 ORDER BY entry_id
"""


def clone_id(list_: str, g: int, subject: dict[str, Any]) -> tuple[str, str]:
    """The g-th clone's entry id and subject id (a natural person keeps a resident-id shape)."""
    if subject.get("kind") == "natural_person":
        sid = subject["id"][:6] + f"{g % 100_000_000:08d}" + subject["id"][-4:]
    else:
        sid = f"S{list_[0].upper()}{g:016d}"
    return f"seed-{list_}-{g:09d}", sid


async def seed(db: asyncpg.Connection, per_list: int) -> None:
    """Top each list up to `per_list` active entries: clones of the projected rows under new entry
    and subject ids (history and current view as the service keeps a never-changed entry), copied
    in 20,000-row transactions, with a progress bar."""
    await pool_codecs(db)
    with progress() as bar:
        for list_ in LISTS:
            have = await db.fetchval(
                "SELECT count(*) FROM sharing.entries WHERE list = $1 AND status = 'active'", list_
            )
            need = per_list - have
            # clones of an earlier run on this database keep their ids: number the new ones after
            first = await db.fetchval(
                "SELECT count(*) FROM sharing.history WHERE version = 1 AND entry_id LIKE $1", f"seed-{list_}-%"
            )
            source = await db.fetch(SOURCE_ROWS, list_)
            task = bar.add_task(f"seed {list_} entries", total=per_list, completed=have)
            for start in range(0, max(0, need) if source else 0, 20_000):
                history: list[tuple[Any, ...]] = []
                current: list[tuple[Any, ...]] = []
                for g in range(start, min(need, start + 20_000)):
                    src = source[g % len(source)]
                    eid, sid = clone_id(list_, first + g, src["entry"]["subject"])
                    entry = {**src["entry"], "entry_id": eid, "subject": {**src["entry"]["subject"], "id": sid}}
                    record = {**src["record"], "designation_id": eid, "subject": entry["subject"]}
                    times = (src["valid_from"], src["valid_to"], src["recorded_at"])
                    history.append(
                        (eid, 1, list_, sid, src["public"], "active", None, entry, record, *times, None, "seed")
                    )
                    current.append(
                        (eid, list_, sid, entry["field"], entry["standard"], entry["unit"], entry["region"],
                         src["public"], "active", None, False, entry, *times, 0)
                    )  # fmt: skip
                async with db.transaction():
                    await db.copy_records_to_table(
                        "history", schema_name="sharing", records=history, columns=HISTORY_COLUMNS
                    )
                    await db.copy_records_to_table(
                        "entries", schema_name="sharing", records=current, columns=ENTRY_COLUMNS
                    )
                bar.update(task, completed=have + min(need, start + 20_000))
    # Measure the steady state, not the autovacuum and checkpoint that two million fresh rows set
    # off (they stall the raw baseline as much as the service).
    for table in ("sharing.entries", "sharing.history"):
        await db.execute(f"VACUUM (ANALYZE) {table}")
    await checkpoint_to_disk(db)


async def run(settings: Settings, n: int, entries: int, lookup_seconds: float, rounds: int = 1) -> list[Result]:
    per_list = entries // 2
    console.print(
        f"[bold]sharing[/] benchmarks: project {n:,} events, {entries:,} entries, then {rounds} round(s) of "
        f"{lookup_seconds:.0f}s of lookups at {reads.LOOKUP_RATE}/s and exports of {per_list:,}"
    )
    db = await asyncpg.connect(settings.database_url)
    svc = ServiceUnderTest("sharing", PORT)
    results: list[Result] = []
    try:
        exists = await db.fetchval("SELECT to_regclass('sharing.change_seq') IS NOT NULL")
        seq_before = await db.fetchval("SELECT value FROM sharing.change_seq") if exists else 0
        # The service reads this run's events only: the designation drain before it leaves a
        # million on the same topic, which it would still be projecting while the reads are timed.
        groups = (await begin_at_the_end(settings, ["sharing"]))["sharing"]
        await fill(settings.kafka_bootstrap_servers, n)
        consume_rate = await raw_consume(settings.kafka_bootstrap_servers, topics.DESIGNATION_EVENTS, n)
        projection, cores = await project(db, svc, n, seq_before)
        console.print(f"  cores busy during the projection (of {os.cpu_count()}): {cores}")
        results.append(
            Result(
                "sharing_projection",
                n,
                projection,
                unit="events/s",
                baseline_case="raw_aiokafka_consume",
                baseline=consume_rate,
                goal=0.5,
                peak_rss_mb=svc.peak_rss_mb,
                extra={"cores": cores},
            )
        )
        await seed(db, per_list)

        async def idle() -> bool:
            outbox = await db.fetchval("SELECT count(*) FROM sharing.outbox")
            return outbox == 0 and await behind(settings.kafka_bootstrap_servers, groups) == 0

        for k in range(rounds):
            results += await reads.measure(settings, svc, lookup_seconds, entries, idle, f"{k + 1}/{rounds}")
    finally:
        await svc.stop()
        await db.close()
    return results
