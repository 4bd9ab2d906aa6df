"""Sharing service benchmarks (issue 4), with the service as a real process:

- projection: N `credit.designation.created` events (whole records, as the designation service
  publishes them; a fifth of them natural persons, half black, half key scrutiny) pre-filled on
  the 12-partition events topic, drained to entries, history and changes committed and both
  list-change topics published; events/s beside raw aiokafka consume of the same messages.
  Goal: at least 0.5 x raw consume.
- subject lookup: `GET /v1/subjects/{id}` at a steady 1,000 requests/s over 2,000,000 active
  entries, p50 and p99 from each request's scheduled time (so a stall counts against every
  request queued behind it), beside a raw asyncpg primary-key lookup of the entries table at the
  same rate. Goal: p99 at most 5 ms.
- export: `GET /v1/export/black.jsonl` and `.csv` of 1,000,000 entries, rows/s as the client
  receives them beside a raw asyncpg `COPY ... TO STDOUT` of the same rows, and the service's
  peak RSS while it streams. Goals: at least 50,000 rows/s, peak RSS at most 200 MB.

The entries beyond the projected ones are cloned in SQL from the projected rows (new entry and
subject ids, otherwise the same documents), so the read benchmarks run over two million rows of
exactly the shape the service writes without projecting two million events first."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaProducer
from credit_common.contracts.envelope import CONTENT_TYPE, new_id
from credit_common.messaging import topics
from credit_common.settings import Settings

from tests.support.subjects import new_resident_id, new_uscc

from .foundation import progress, raw_consume
from .harness import Result, ServiceUnderTest, console

PORT = 28102
LISTS = ("black", "key_scrutiny")
LOOKUP_RATE = 1000
LOOKUP_CONNECTIONS = 32


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
        bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024
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


async def project(db: asyncpg.Connection, svc: ServiceUnderTest, n: int, seq_before: int) -> float:
    """Start the service; wait until n more changes are committed and its outbox is empty (both
    topics published); events/s from process start."""
    await svc.start()
    with progress() as bar:
        task = bar.add_task("sharing projection", total=n)
        while True:
            seq = await db.fetchval("SELECT value FROM sharing.change_seq") - seq_before
            bar.update(task, completed=seq)
            if seq >= n and await db.fetchval("SELECT count(*) FROM sharing.outbox") == 0:
                return n / (time.perf_counter() - svc.started_at)
            await asyncio.sleep(0.25)


# Clone projected rows of one list under new entry and subject ids: history first, then the
# current view from it (exactly what the service keeps for a never-changed entry).
CLONE_HISTORY = """
WITH src AS (
    SELECT row_number() OVER (ORDER BY entry_id) - 1 AS i, h.*
      FROM history h WHERE h.list = $1 AND h.version = 1 AND h.status = 'active' AND h.entry_id NOT LIKE 'seed-%'
), n AS (SELECT count(*) AS n FROM src)
INSERT INTO history (entry_id, version, list, subject_id, public, status, reason, entry, record,
                     valid_from, valid_to, recorded_at, superseded_at, cause)
SELECT x.eid, 1, s.list, x.sid, s.public, s.status, s.reason,
       jsonb_set(jsonb_set(s.entry, '{entry_id}', to_jsonb(x.eid)), '{subject,id}', to_jsonb(x.sid)),
       jsonb_set(jsonb_set(s.record, '{designation_id}', to_jsonb(x.eid)), '{subject,id}', to_jsonb(x.sid)),
       s.valid_from, s.valid_to, s.recorded_at, NULL, 'seed'
  FROM generate_series($2::bigint, $3::bigint - 1) AS g
  CROSS JOIN n
  JOIN src s ON s.i = g % n.n
  CROSS JOIN LATERAL (
      SELECT 'seed-' || $1 || '-' || lpad(g::text, 9, '0') AS eid,
             CASE WHEN s.subject_id ~ '^\\d{17}[0-9X]$' AND (s.entry -> 'subject' ->> 'kind') = 'natural_person'
                  THEN left(s.subject_id, 6) || lpad((g % 100000000)::text, 8, '0') || right(s.subject_id, 4)
                  ELSE 'S' || upper(left($1, 1)) || lpad(g::text, 16, '0') END AS sid
  ) AS x
"""
ENTRIES_FROM_HISTORY = """
INSERT INTO entries (entry_id, list, subject_id, field, standard, unit, region, public, status, reason,
                     under_objection, entry, valid_from, valid_to, recorded_at, seq)
SELECT entry_id, list, subject_id, entry ->> 'field', entry ->> 'standard', entry ->> 'unit', entry ->> 'region',
       public, status, reason, false, entry, valid_from, valid_to, recorded_at, 0
  FROM history WHERE entry_id >= $1 AND entry_id < $2
"""


async def seed(db: asyncpg.Connection, per_list: int) -> None:
    """Top each list up to `per_list` active entries, in chunks (with a progress bar)."""
    chunk = 100_000
    with progress() as bar:
        for list_ in LISTS:
            have = await db.fetchval(
                "SELECT count(*) FROM sharing.entries WHERE list = $1 AND status = 'active'", list_
            )
            task = bar.add_task(f"seed {list_} entries", total=per_list, completed=have)
            start = 0
            while have < per_list:
                k = min(chunk, per_list - have)
                async with db.transaction():
                    await db.execute("SET LOCAL search_path TO sharing")
                    await db.execute(CLONE_HISTORY, list_, start, start + k)
                    low, high = f"seed-{list_}-{start:09d}", f"seed-{list_}-{start + k:09d}"
                    await db.execute(ENTRIES_FROM_HISTORY, low, high)
                start += k
                have += k
                bar.update(task, completed=have)
    await db.execute("ANALYZE sharing.entries")
    await db.execute("ANALYZE sharing.history")


# ----------------------------------------------------------------------------- subject lookups


class RawHttp:
    """A bare HTTP/1.1 keep-alive connection: the client side costs microseconds, so the measured
    latency is the service's, not a client library's."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> RawHttp:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def get(self, path: str) -> tuple[int, bytes]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def steady(
    rate: int,
    seconds: float,
    connections: int,
    make: Callable[[], Awaitable[Any]],
    call: Callable[[Any, int], Awaitable[None]],
) -> list[float]:
    """`rate` calls a second for `seconds` over `connections` connections (each call on a free
    one); latency of each in ms from its scheduled time."""
    conns: asyncio.Queue[Any] = asyncio.Queue()
    for _ in range(connections):
        conns.put_nowait(await make())
    lat: list[float] = []
    n = int(rate * seconds)
    t0 = time.perf_counter()

    async def one(i: int, due: float) -> None:
        conn = await conns.get()
        try:
            await call(conn, i)
        finally:
            conns.put_nowait(conn)
        lat.append((time.perf_counter() - due) * 1000)

    tasks = []
    for i in range(n):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    while not conns.empty():
        c = conns.get_nowait()
        if isinstance(c, RawHttp):
            c.close()
    return lat


def percentiles(lat: list[float]) -> tuple[float, float]:
    s = sorted(lat)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.99))]


async def lookups(settings: Settings, svc: ServiceUnderTest, seconds: float) -> dict[str, float]:
    db = await asyncpg.connect(settings.database_url)
    try:
        sample = await db.fetch(
            "SELECT subject_id, entry_id FROM sharing.entries WHERE status = 'active' ORDER BY random() LIMIT 20000"
        )
        subjects = [r["subject_id"] for r in sample]
        entry_ids = [r["entry_id"] for r in sample]
    finally:
        await db.close()
    rng = random.Random(7)
    rng.shuffle(subjects)
    found = 0

    async def service_call(conn: RawHttp, i: int) -> None:
        nonlocal found
        status, body = await conn.get(f"/v1/subjects/{subjects[i % len(subjects)]}")
        assert status == 200, body[:200]
        found += b'"entry_id"' in body

    pool = await asyncpg.create_pool(settings.database_url, min_size=LOOKUP_CONNECTIONS, max_size=LOOKUP_CONNECTIONS)
    assert pool is not None

    async def raw_call(_: object, i: int) -> None:
        await pool.fetchrow("SELECT entry FROM sharing.entries WHERE entry_id = $1", entry_ids[i % len(entry_ids)])

    try:
        console.print(f"raw asyncpg primary-key lookups, {LOOKUP_RATE}/s for {seconds:.0f}s")
        raw = await steady(LOOKUP_RATE, seconds, LOOKUP_CONNECTIONS, lambda: asyncio.sleep(0), raw_call)
    finally:
        await pool.close()
    console.print(f"GET /v1/subjects/{{id}}, {LOOKUP_RATE}/s for {seconds:.0f}s")
    svc_lat = await steady(LOOKUP_RATE, seconds, LOOKUP_CONNECTIONS, lambda: RawHttp.open(svc.port), service_call)
    assert found >= len(svc_lat) * 0.99, f"only {found} of {len(svc_lat)} lookups found their subject's entries"
    p50, p99 = percentiles(svc_lat)
    raw50, raw99 = percentiles(raw)
    return {"n": len(svc_lat), "p50": p50, "p99": p99, "raw_p50": raw50, "raw_p99": raw99}


# ------------------------------------------------------------------------------------- exports


async def raw_copy_out(settings: Settings, n: int) -> float:
    """COPY the rows the export streams (the black list's active entries in entry id order)."""
    db = await asyncpg.connect(settings.database_url)
    rows = 0

    async def sink(chunk: bytes) -> None:
        nonlocal rows
        rows += chunk.count(b"\n")

    try:
        t0 = time.perf_counter()
        await db.copy_from_query(
            "SELECT entry FROM sharing.entries WHERE list = 'black' AND status = 'active' ORDER BY entry_id",
            output=sink,
        )
        elapsed = time.perf_counter() - t0
    finally:
        await db.close()
    assert rows == n, f"COPY gave {rows} rows, expected {n}"
    return rows / elapsed


async def export(svc: ServiceUnderTest, fmt: str, n: int) -> tuple[float, float]:
    """Stream the black list's export; rows/s and the service's peak RSS (MB) while it streamed."""
    lines = 0
    svc.reset_peak()
    async with httpx.AsyncClient(base_url=svc.base_url, timeout=600) as client:
        with progress() as bar:
            task = bar.add_task(f"export black.{fmt}", total=n)
            t0 = time.perf_counter()
            async with client.stream("GET", f"/v1/export/black.{fmt}") as response:
                assert response.status_code == 200
                async for chunk in response.aiter_raw():
                    lines += chunk.count(b"\n")
                    bar.update(task, completed=lines)
            elapsed = time.perf_counter() - t0
    rows = lines - (1 if fmt == "csv" else 0)
    assert rows == n, f"the {fmt} export gave {rows} rows, expected {n}"
    await asyncio.sleep(0.2)  # one more RSS sample after the last chunk
    return rows / elapsed, svc.peak_rss_mb


async def run(settings: Settings, n: int, entries: int, lookup_seconds: float) -> list[Result]:
    per_list = entries // 2
    console.print(
        f"[bold]sharing[/] benchmarks: project {n:,} events, {entries:,} entries, "
        f"{lookup_seconds:.0f}s of lookups at {LOOKUP_RATE}/s, exports of {per_list:,}"
    )
    db = await asyncpg.connect(settings.database_url)
    svc = ServiceUnderTest("sharing", PORT)
    try:
        exists = await db.fetchval("SELECT to_regclass('sharing.change_seq') IS NOT NULL")
        seq_before = await db.fetchval("SELECT value FROM sharing.change_seq") if exists else 0
        await fill(settings.kafka_bootstrap_servers, n)
        consume_rate = await raw_consume(settings.kafka_bootstrap_servers, topics.DESIGNATION_EVENTS, n)
        projection = await project(db, svc, n, seq_before)
        projection_rss = svc.peak_rss_mb
        await seed(db, per_list)
        lookup = await lookups(settings, svc, lookup_seconds)
        listed = await db.fetchval("SELECT count(*) FROM sharing.entries WHERE list = 'black' AND status = 'active'")
        copy_rate = await raw_copy_out(settings, listed)
        jsonl_rate, jsonl_rss = await export(svc, "jsonl", listed)
        csv_rate, csv_rss = await export(svc, "csv", listed)
    finally:
        await svc.stop()
        await db.close()
    return [
        Result(
            "sharing_projection",
            n,
            projection,
            unit="events/s",
            baseline_case="raw_aiokafka_consume",
            baseline=consume_rate,
            goal=0.5,
            peak_rss_mb=projection_rss,
        ),
        Result(
            "sharing_subject_lookup",
            int(lookup["n"]),
            lookup["p99"],
            unit="ms p99",
            baseline_case="raw_asyncpg_pk_lookup_p99",
            baseline=lookup["raw_p99"],
            peak_rss_mb=svc.peak_rss_mb,
            extra={
                "rate_per_s": LOOKUP_RATE,
                "entries": entries,
                "p50_ms": f"{lookup['p50']:.2f}",
                "p99_ms": f"{lookup['p99']:.2f}",
                "raw_p50_ms": f"{lookup['raw_p50']:.2f}",
                "raw_p99_ms": f"{lookup['raw_p99']:.2f}",
                "goal_p99_ms": 5,
            },
        ),
        Result(
            "sharing_export_jsonl",
            listed,
            jsonl_rate,
            unit="rows/s",
            baseline_case="raw_asyncpg_copy_out",
            baseline=copy_rate,
            peak_rss_mb=jsonl_rss,
            extra={"goal_rows_per_s": 50_000, "goal_peak_rss_mb": 200},
        ),
        Result(
            "sharing_export_csv",
            listed,
            csv_rate,
            unit="rows/s",
            baseline_case="raw_asyncpg_copy_out",
            baseline=copy_rate,
            peak_rss_mb=csv_rss,
            extra={"goal_rows_per_s": 50_000, "goal_peak_rss_mb": 200},
        ),
    ]
