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
from credit_common.db.pool import init_connection as pool_codecs
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.settings import Settings

from tests.support.subjects import new_resident_id, new_uscc
from tests.support.tokens import auth_headers

from .foundation import progress, raw_consume
from .harness import Result, ServiceUnderTest, checkpoint_to_disk, console, driver_gc_paused

PORT = 28102
LISTS = ("black", "key_scrutiny")
LOOKUP_RATE = 1000
LOOKUP_CONNECTIONS = 32
WARMUP_SECONDS = 2.0


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
            source = await db.fetch(SOURCE_ROWS, list_)
            task = bar.add_task(f"seed {list_} entries", total=per_list, completed=have)
            for start in range(0, max(0, need) if source else 0, 20_000):
                history: list[tuple[Any, ...]] = []
                current: list[tuple[Any, ...]] = []
                for g in range(start, min(need, start + 20_000)):
                    src = source[g % len(source)]
                    eid, sid = clone_id(list_, g, src["entry"]["subject"])
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


# ----------------------------------------------------------------------------- subject lookups


class RawHttp:
    """A bare HTTP/1.1 keep-alive connection: the client side costs microseconds, so the measured
    latency is the service's, not a client library's."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        # As an internal reader does: a bearer token of scope `internal` on every request.
        self.auth = auth_headers(scopes="internal")["Authorization"]

    @classmethod
    async def open(cls, port: int) -> RawHttp:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def get(self, path: str) -> tuple[int, bytes]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {self.auth}\r\n\r\n".encode())
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
    warmup: float = WARMUP_SECONDS,
) -> list[float]:
    """`rate` calls a second for `seconds` over `connections` connections (each call on a free
    one); latency of each in ms from its scheduled time. The first `warmup` seconds of calls at
    the same rate go unmeasured (each connection's first statements and pages), and the driver's
    garbage collector stays out of the window."""
    conns: asyncio.Queue[Any] = asyncio.Queue()
    for _ in range(connections):
        conns.put_nowait(await make())
    lat: list[float] = []
    skip = int(rate * warmup)
    n = int(rate * seconds)

    async def one(i: int, due: float) -> None:
        conn = await conns.get()
        try:
            await call(conn, i)
        finally:
            conns.put_nowait(conn)
        if i >= skip:
            lat.append((time.perf_counter() - due) * 1000)

    with driver_gc_paused():
        tasks = []
        t0 = time.perf_counter()
        for i in range(skip + n):
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
    gc_before = await svc.gc_pauses()
    svc_lat = await steady(LOOKUP_RATE, seconds, LOOKUP_CONNECTIONS, lambda: RawHttp.open(svc.port), service_call)
    gc_after = await svc.gc_pauses()
    gc_n, gc_s = gc_after[0] - gc_before[0], gc_after[1] - gc_before[1]
    console.print(f"  the service's garbage collector in the window: {gc_n} collections, {gc_s * 1000:.0f} ms")
    console.print(f"  slowest second: {slowest_second(svc_lat, LOOKUP_RATE)}")
    assert found >= len(svc_lat) * 0.99, f"only {found} of {len(svc_lat)} lookups found their subject's entries"
    capacity = await closed_loop(svc.port, subjects, seconds=5.0)
    p50, p99 = percentiles(svc_lat)
    raw50, raw99 = percentiles(raw)
    return {
        "n": len(svc_lat),
        "p50": p50,
        "p99": p99,
        "raw_p50": raw50,
        "raw_p99": raw99,
        "capacity": capacity,
        "gc_n": gc_n,
        "gc_ms": gc_s * 1000,
    }


def slowest_second(lat: list[float], rate: int) -> str:
    """The second (of calls in the order they finished) with the worst latency, and that worst."""
    worst = max(range(0, len(lat), rate), key=lambda i: max(lat[i : i + rate]), default=0)
    return f"second {worst // rate}: max {max(lat[worst : worst + rate], default=0):.1f} ms"


async def closed_loop(port: int, subjects: list[str], seconds: float, connections: int = 8) -> float:
    """What the service serves when asked as fast as it answers (requests/s): its capacity."""
    conns = [await RawHttp.open(port) for _ in range(connections)]
    end = time.perf_counter() + seconds
    done = 0

    async def ask(conn: RawHttp) -> None:
        nonlocal done
        while time.perf_counter() < end:
            status, _ = await conn.get(f"/v1/subjects/{subjects[done % len(subjects)]}")
            assert status == 200
            done += 1

    with driver_gc_paused():
        t0 = time.perf_counter()
        await asyncio.gather(*(ask(c) for c in conns))
        elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    return done / elapsed


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
    # On a shared stack (the suite's smoke run) other services' tests may still change the list.
    assert rows >= n * 0.99, f"COPY gave {rows} rows, expected {n}"
    return rows / elapsed


async def export(svc: ServiceUnderTest, fmt: str, n: int) -> tuple[float, float]:
    """Stream the black list's export; rows/s and the service's peak RSS (MB) while it streamed."""
    lines = 0
    svc.reset_peak()
    async with httpx.AsyncClient(base_url=svc.base_url, timeout=600, headers=auth_headers()) as client:
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
    assert rows >= n * 0.99, f"the {fmt} export gave {rows} rows, expected {n}"
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
                "capacity_per_s": f"{lookup['capacity']:.0f}",
                "service_gc": f"{lookup['gc_n']:.0f}/{lookup['gc_ms']:.0f}ms",
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
