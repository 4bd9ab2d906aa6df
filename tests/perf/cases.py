"""Cases service benchmarks (issue 7), with the service as a real process:

- recording: N enforcement reports pre-filled on the 12-partition actions topic (against
  designations the service has already read), drained to cases committed and
  `credit.case.recorded` events published; reports/s beside raw aiokafka consume of the same
  messages.
- indicators: `GET /v1/indicators` p50 and p99 with 1,000,000 cases recorded (those drained,
  topped up by COPY of clones spread over two years, tallies included), beside the raw SQL
  aggregate over the cases it answers. Goal: p99 at most 50 ms."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from credit_common.clock import SHANGHAI
from credit_common.contracts.envelope import CONTENT_TYPE, new_id
from credit_common.db.pool import init_connection as pool_codecs
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.settings import Settings

from tests.support.kafka_admin import wait_caught_up
from tests.support.subjects import new_uscc

from .foundation import PARTITIONS, progress, raw_consume
from .harness import Result, ServiceUnderTest, checkpoint_to_disk, console, envelope_bytes
from .reads import RawHttp, percentiles, steady

PORT = 28105
DESIGNATIONS = 20_000  # the reports name these (fewer for a short run: a tenth of the reports)
INPUTS = [topics.DESIGNATION_EVENTS, topics.OBJECTION_EVENTS, topics.ENFORCEMENT_ACTIONS]
# (reporting unit, measure) pairs that apply to a black taxation entry, from four provinces.
REPORTERS = [
    ("440000-GAC", "tax-black-customs-inspection"),
    ("310000-GAC", "tax-black-customs-inspection"),
    ("110105-SAMR", "tax-black-legal-representative-ban"),
    ("330000-SAMR", "tax-black-legal-representative-ban"),
    ("320000-PBOC", "tax-black-bond-issue-limit"),
]
START = date(2025, 1, 1)
INDICATOR_RATE = 50  # requests/s to GET /v1/indicators
RAW_INDICATOR_SQL = """
SELECT c.province, c.cases, c.media, coalesce(d.made, 0) AS made
  FROM (SELECT province, count(*) AS cases, count(*) FILTER (WHERE media_reported) AS media
          FROM cases.cases WHERE applied_on >= $1 AND applied_on < $2 GROUP BY province) c
  FULL JOIN (SELECT province, count(*) AS made FROM cases.designations
              WHERE list IN ('red', 'black') AND decided_on >= $1 AND decided_on < $2 GROUP BY province) d
 USING (province)
"""


def designation_record(i: int) -> dict[str, Any]:
    subject = new_uscc(random.Random(i))
    return {
        "designation_id": f"bench-case-designation-{i:06d}",
        "list": "black",
        "field": "taxation",
        "standard": "taxation-black",
        "standard_version": 1,
        "subject": {"kind": "legal_person", "scheme": "uscc", "id": subject, "name": f"Bench Trading Co. {i}"},
        "unit": "110108-SAT",
        "unit_level": "county",
        "region": "110108",
        "decision": {"document_no": f"BENCH-{i}", "decided_on": START.isoformat(), "facts": "Bench facts."},
        "effective_from": START.isoformat(),
        "effective_to": (START + timedelta(days=1094)).isoformat(),
        "public": True,
        "status": "active",
    }


def envelope(type_: str, source: str, subject: str, data: dict[str, Any], at: datetime) -> bytes:
    return envelope_bytes(
        {
            "specversion": "1.0",
            "id": new_id(),
            "source": source,
            "type": type_,
            "time": at.isoformat(),
            "subject": subject,
            "datacontenttype": "application/json",
            "data": data,
        }
    )


async def produce(bootstrap: str, topic: str, label: str, items: Any, n: int) -> None:
    producer = AIOKafkaProducer(
        **kafka_options(bootstrap), enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    headers = [("content-type", CONTENT_TYPE.encode())]
    try:
        with progress() as bar:
            task = bar.add_task(label, total=n)
            futures = []
            for i, (key, value) in enumerate(items):
                futures.append(await producer.send(topic, value=value, key=key, headers=headers))
                if len(futures) >= 20_000:
                    await asyncio.gather(*futures)
                    futures = []
                    bar.update(task, completed=i + 1)
            await asyncio.gather(*futures)
            bar.update(task, completed=n)
    finally:
        await producer.stop()


def designation_events(k: int) -> Any:
    at = datetime(START.year, START.month, START.day, 4, tzinfo=UTC)
    for i in range(k):
        rec = designation_record(i)
        sid = rec["subject"]["id"]
        yield sid.encode(), envelope("credit.designation.created", "platform/designation", sid, {"record": rec}, at)


def reports(n: int, k: int) -> Any:
    rng = random.Random(20261126)
    now = datetime.now(SHANGHAI)
    span = (now.date() - START).days
    for i in range(n):
        d = i % k
        sid = new_uscc(random.Random(d))
        unit, measure = REPORTERS[i % len(REPORTERS)]
        applied = START + timedelta(days=rng.randrange(span))
        media = (
            [{"outlet": "Provincial Daily", "level": "provincial", "url": f"https://news.example.cn/{i}",
              "published_on": applied.isoformat()}]
            if i % 7 == 0 else []
        )  # fmt: skip
        data = {
            "designation_id": f"bench-case-designation-{d:06d}",
            "measure": measure,
            "applied_on": applied.isoformat(),
            "outcome": "Applied as the memorandum provides.",
            "description": "Customs inspection rate raised for the enterprise's declarations.",
            "typical": i % 50 == 0,
            "media": media,
        }
        yield sid.encode(), envelope("credit.enforcement.report", f"unit/{unit}", sid, data, now)


async def record(
    settings: Settings, db: asyncpg.Connection, svc: ServiceUnderTest, n: int, before: int, events_before: int
) -> float:
    """Start the service and wait until n more cases are committed and n more case events are on
    the topic than before the reports were sent; reports/s from process start."""
    await svc.start()
    deadline = time.perf_counter() + max(600.0, n / 100)
    with progress() as bar:
        task = bar.add_task("cases service drain", total=n)
        while True:
            rows = await db.fetchval("SELECT count(*) FROM cases.cases") - before
            events = await _ends(settings.kafka_bootstrap_servers) - events_before
            bar.update(task, completed=min(rows, events))
            if rows >= n and events >= n:
                return n / (time.perf_counter() - svc.started_at)
            if time.perf_counter() > deadline:
                raise AssertionError(f"cases drain: {rows} rows and {events} events of {n} by the deadline")
            await asyncio.sleep(0.5)


async def _ends(bootstrap: str) -> int:
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap))
    await consumer.start()
    try:
        tps = [TopicPartition(topics.CASES_EVENTS, p) for p in range(PARTITIONS)]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


CASE_COLUMNS = (
    "case_id", "designation_id", "subject_id", "subject", "list", "field", "standard", "public", "mou", "measure",
    "measure_kind", "unit", "province", "applied_on", "outcome", "description", "typical", "media", "media_reported",
    "reported_by", "recorded_at",
)  # fmt: skip


async def top_up(db: asyncpg.Connection, total: int) -> None:
    """Clone recorded cases (new ids, applied days spread over two years) until `total` are
    recorded, with their tallies, in 20,000-row transactions; then VACUUM ANALYZE."""
    await pool_codecs(db)
    have = await db.fetchval("SELECT count(*) FROM cases.cases")
    need = total - have
    source = await db.fetch(f"SELECT {', '.join(CASE_COLUMNS)} FROM cases.cases LIMIT 5000")
    if need <= 0 or not source:
        return
    rng = random.Random(11)
    span = (datetime.now(SHANGHAI).date() - START).days
    with progress() as bar:
        task = bar.add_task("top up cases (COPY)", total=total, completed=have)
        for start in range(0, need, 20_000):
            rows: list[tuple[Any, ...]] = []
            tallies: Counter[tuple[Any, ...]] = Counter()
            media: Counter[tuple[Any, ...]] = Counter()
            typical: Counter[tuple[Any, ...]] = Counter()
            for g in range(start, min(need, start + 20_000)):
                src = dict(source[g % len(source)])
                src["case_id"] = f"bench-case-{g:09d}"
                src["applied_on"] = START + timedelta(days=rng.randrange(span))
                rows.append(tuple(src[c] for c in CASE_COLUMNS))
                a: date = src["applied_on"]
                key = (a.year, a.month, src["province"], src["unit"], src["field"], src["list"], src["measure"],
                       src["measure_kind"])  # fmt: skip
                tallies[key] += 1
                media[key] += src["media_reported"]
                typical[key] += src["typical"]
            keys = sorted(tallies)
            async with db.transaction():
                await db.copy_records_to_table("cases", schema_name="cases", records=rows, columns=CASE_COLUMNS)
                await db.executemany(
                    """
                    INSERT INTO cases.case_tallies AS t VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                    ON CONFLICT (year, month, province, unit, field, list, measure) DO UPDATE
                       SET cases = t.cases + EXCLUDED.cases, media_cases = t.media_cases + EXCLUDED.media_cases,
                           typical_cases = t.typical_cases + EXCLUDED.typical_cases
                    """,
                    [(*k, tallies[k], media[k], typical[k]) for k in keys],
                )
            bar.update(task, completed=have + min(need, start + 20_000))
    await db.execute("VACUUM (ANALYZE) cases.cases")
    await checkpoint_to_disk(db)


async def indicators(settings: Settings, svc: ServiceUnderTest, seconds: float) -> dict[str, float]:
    """GET /v1/indicators at a steady rate; then the raw aggregate it answers, run back to back."""
    year = datetime.now(SHANGHAI).year

    async def service_call(conn: RawHttp, i: int) -> None:
        status, body = await conn.get(f"/v1/indicators?year={year}")
        assert status == 200, body[:200]

    svc_lat = await steady(INDICATOR_RATE, seconds, 4, lambda: RawHttp.open(svc.port), service_call)
    bounds = (date(year, 1, 1), date(year + 1, 1, 1))
    pool = await asyncpg.create_pool(settings.database_url, min_size=4, max_size=4)
    try:
        # The raw aggregate takes far longer than the service's answer: at the service's rate it
        # would only measure its own queue. Each run on its own, back to back, is its latency.
        raw: list[float] = []
        end = time.perf_counter() + max(2.0, seconds / 3)
        while time.perf_counter() < end or len(raw) < 3:
            t0 = time.perf_counter()
            await pool.fetch(RAW_INDICATOR_SQL, *bounds)
            raw.append((time.perf_counter() - t0) * 1000)
    finally:
        await pool.close()
    p50, p99 = percentiles(svc_lat)
    raw50, raw99 = percentiles(raw)
    return {"n": len(svc_lat), "p50": p50, "p99": p99, "raw_p50": raw50, "raw_p99": raw99}


async def run(settings: Settings, n: int, total: int, seconds: float) -> list[Result]:
    console.print(
        f"[bold]cases[/] benchmarks: record {n:,} reports, then {seconds:.0f}s of indicators at "
        f"{INDICATOR_RATE}/s over {total:,} cases"
    )
    bootstrap = settings.kafka_bootstrap_servers
    svc = ServiceUnderTest("cases", PORT)
    db = await asyncpg.connect(settings.database_url)
    try:
        # The designations the reports name, read before the clock starts.
        k = min(DESIGNATIONS, max(100, n // 10))
        await produce(bootstrap, topics.DESIGNATION_EVENTS, "designations for the cases", designation_events(k), k)
        await svc.start()
        await wait_caught_up(bootstrap, "cases", INPUTS, timeout=1800)
        await svc.stop()
        before = await db.fetchval("SELECT count(*) FROM cases.cases")
        events_before = await _ends(bootstrap)
        await produce(bootstrap, topics.ENFORCEMENT_ACTIONS, "fill enforcement reports", reports(n, k), n)
        # n reports of the same shape from the topic's start (on a fresh bench stack: these).
        consume_rate = await raw_consume(bootstrap, topics.ENFORCEMENT_ACTIONS, n)
        svc.reset_peak()
        rate = await record(settings, db, svc, n, before, events_before)
        record_rss = svc.peak_rss_mb
        await top_up(db, total)
        recorded = await db.fetchval("SELECT count(*) FROM cases.cases")
        ind = await indicators(settings, svc, seconds)
    finally:
        await svc.stop()
        await db.close()
    return [
        Result(
            "cases_recording",
            n,
            rate,
            unit="reports/s",
            baseline_case="raw_aiokafka_consume",
            baseline=consume_rate,
            peak_rss_mb=record_rss,
        ),
        Result(
            "cases_indicators",
            int(ind["n"]),
            ind["p99"],
            unit="ms p99",
            baseline_case="raw_sql_aggregate_p99",
            baseline=ind["raw_p99"],
            peak_rss_mb=svc.peak_rss_mb,
            extra={
                "cases": recorded,
                "rate_per_s": INDICATOR_RATE,
                "p50_ms": f"{ind['p50']:.2f}",
                "p99_ms": f"{ind['p99']:.2f}",
                "raw_p50_ms": f"{ind['raw_p50']:.2f}",
                "raw_p99_ms": f"{ind['raw_p99']:.2f}",
                "goal_p99_ms": 50,
            },
        ),
    ]
