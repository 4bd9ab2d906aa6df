"""The sharing service's read path (issue 21: it holds in every run, not in the lucky ones):

- subject lookup: `GET /v1/subjects/{id}` at a steady 1,000 requests/s, p50 and p99 from each
  request's scheduled time (so a stall counts against every request queued behind it), beside a
  raw asyncpg primary-key lookup of the entries table at the same rate; then the service's
  capacity asked as fast as it answers. Goal: p99 at most 2x the raw lookup's.
- export: `GET /v1/export/black.jsonl` and `.csv`, rows/s as the client receives them beside a raw
  asyncpg `COPY ... TO STDOUT` of the same rows, and the service's peak RSS while it streams.
  Goal: at least 50,000 rows/s.

Each round begins on a quiet machine: the service has read everything on its topics and
published its outbox, and no autovacuum worker runs."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
from credit_common.settings import Settings

from tests.support.tokens import auth_headers

from .foundation import progress
from .harness import Result, ServiceUnderTest, console, driver_gc_paused

LOOKUP_RATE = 1000
LOOKUP_CONNECTIONS = 32
WARMUP_SECONDS = 2.0
LOOKUP_GOAL_RATIO = 2
EXPORT_GOAL = 50_000


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


# --------------------------------------------------------------------------------- one round


async def quiet(db: asyncpg.Connection, is_idle: Callable[[], Awaitable[bool]], timeout: float = 300.0) -> float:
    """Wait until the service is idle (its own test) and no autovacuum worker runs; seconds
    waited. Fails loudly rather than measure a busy machine."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        workers = await db.fetchval("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")
        if workers == 0 and await is_idle():
            waited = time.perf_counter() - t0
            if waited >= 1.0:
                console.print(f"  waited {waited:.0f}s for the service and PostgreSQL to be idle")
            return waited
        await asyncio.sleep(1.0)
    raise AssertionError(f"the service or PostgreSQL was still busy after {timeout:.0f}s")


async def measure(
    settings: Settings,
    svc: ServiceUnderTest,
    seconds: float,
    entries: int,
    is_idle: Callable[[], Awaitable[bool]],
    round_: str,
) -> list[Result]:
    """One round of the read path on a quiet machine: lookups, then both exports."""
    db = await asyncpg.connect(settings.database_url)
    try:
        waited = await quiet(db, is_idle)
        lookup = await lookups(settings, svc, seconds)
        listed = await db.fetchval("SELECT count(*) FROM sharing.entries WHERE list = 'black' AND status = 'active'")
    finally:
        await db.close()
    copy_rate = await raw_copy_out(settings, listed)
    jsonl_rate, jsonl_rss = await export(svc, "jsonl", listed)
    csv_rate, csv_rss = await export(svc, "csv", listed)
    ratio = lookup["p99"] / lookup["raw_p99"]
    exports: dict[str, float | str] = {"goal_rows_per_s": EXPORT_GOAL, "goal_peak_rss_mb": 200, "round": round_}
    return [
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
                "goal": f"p99<={LOOKUP_GOAL_RATIO}x_raw:{'met' if ratio <= LOOKUP_GOAL_RATIO else 'NOT_met'}",
                "round": round_,
                "waited_idle_s": f"{waited:.0f}",
            },
        ),
        *(
            Result(
                f"sharing_export_{fmt}",
                listed,
                rate,
                unit="rows/s",
                baseline_case="raw_asyncpg_copy_out",
                baseline=copy_rate,
                peak_rss_mb=rss,
                extra=dict(exports),
            )
            for fmt, rate, rss in (("jsonl", jsonl_rate, jsonl_rss), ("csv", csv_rate, csv_rss))
        ),
    ]
