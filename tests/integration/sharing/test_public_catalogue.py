"""What the public asks first, through the real service: is this company (or person) on a list?
`GET /v1/public/search` by a part of the name or of the identifier (a natural person's only in its
masked form, never by the raw number), answered from a trigram index; and the published standards
and memorandums in force (`/v1/public/standards`, `/v1/public/mous`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from credit_common.clock import SHANGHAI
from credit_common.contracts.envelope import new_id
from credit_common.contracts.events import ListChange
from credit_common.messaging import topics
from credit_common.settings import Settings

from services.sharing import public, publication
from tests.support.collector import Collector
from tests.support.events import company, person
from tests.support.processes import ServiceProcess

from .conftest import caught_up, created, publish, record, removed

pytestmark = pytest.mark.integration
MIGRATIONS = Path(public.__file__).parent / "migrations"


async def found(http: httpx.AsyncClient, q: str, **params: Any) -> list[dict[str, Any]]:
    r = await http.get("/v1/public/search", params={"q": q, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["entries"])


async def test_search_finds_public_entries_by_name_and_identifier_masked_for_people(
    stack: Settings, http: httpx.AsyncClient, kafka: AIOKafkaProducer
) -> None:
    tag = uuid.uuid4().hex[:8]
    at = datetime.now(UTC) - timedelta(hours=1)
    firm = company(f"Qilin{tag} Trading Co., Ltd.")
    cn = company(f"成都麒麟{tag}商贸有限公司")
    someone = person(f"Zhao Qilin{tag}")
    on_list = [record(firm), record(cn, list_="red", field="taxation"), record(someone)]
    hidden = record(company(f"Qilin{tag} Hidden Co."), public=False)  # a standard that is not public
    gone = record(company(f"Qilin{tag} Former Co."))  # left its list
    for rec in (*on_list, hidden, gone):
        await publish(kafka, created(rec, at))
    await publish(kafka, removed(gone, at + timedelta(minutes=1)))
    await caught_up(stack)

    hits = await found(http, f"qilin{tag}")  # any case
    assert sorted(e["entry_id"] for e in hits) == sorted([on_list[0]["designation_id"], on_list[2]["designation_id"]])
    assert all("facts" not in (e.get("decision") or {}) for e in hits)
    (cn_hit,) = await found(http, f"麒麟{tag}商贸")
    assert cn_hit["subject"]["name"] == cn["name"]
    assert [e["entry_id"] for e in await found(http, f"Qilin{tag}", list="red")] == []
    assert [e["entry_id"] for e in await found(http, f"麒麟{tag}", list="red")] == [on_list[1]["designation_id"]]

    # A legal person by a part of its code; a natural person only by the masked form.
    (by_code,) = await found(http, firm["id"][4:14].lower())
    assert by_code["subject"]["id"] == firm["id"]
    rid = someone["id"]
    masked = rid[:6] + "*" * 8 + rid[-4:]
    (by_mask,) = await found(http, masked)
    assert by_mask["subject"] == {**someone, "id": masked}
    for raw in (rid, rid[6:14]):  # the number, or the birth date in it, finds nothing
        assert await found(http, raw) == []

    # Paged like the lists: a cursor for the same question.
    first = (await http.get("/v1/public/search", params={"q": f"qilin{tag}", "limit": 1})).json()
    assert len(first["entries"]) == 1
    assert first["next_cursor"]
    second = (
        await http.get("/v1/public/search", params={"q": f"qilin{tag}", "limit": 1, "cursor": first["next_cursor"]})
    ).json()
    assert [*first["entries"], *second["entries"]] == hits
    other = await http.get("/v1/public/search", params={"q": "another question", "cursor": first["next_cursor"]})
    assert other.status_code == 400


@pytest.mark.parametrize(
    ("params", "status"),
    [({"q": "ab"}, 422), ({"q": "  ab  "}, 422), ({"q": "x" * 101}, 422), ({"q": "abc", "list": "grey"}, 404)],
)
async def test_a_search_too_short_or_of_an_unknown_list_is_refused(
    http: httpx.AsyncClient, params: dict[str, str], status: int
) -> None:
    r = await http.get("/v1/public/search", params=params)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_the_search_is_answered_from_the_trigram_index(
    admin: asyncpg.Connection, schema_factory: Callable[..., Any]
) -> None:
    """200,000 public entries in a schema of the sharing service's migrations: the planner answers
    the service's own search from `entries_search`, not by reading the entries, and finds the one."""
    pool = await schema_factory(migrations=MIGRATIONS)
    await pool.execute(
        """
        INSERT INTO entries (entry_id, list, subject_id, public, status, under_objection, entry, valid_from,
                             recorded_at)
        SELECT 'e' || lpad(i::text, 7, '0'), 'black', 'S' || i, true, 'active', false,
               jsonb_build_object('subject', jsonb_build_object(
                   'kind', 'legal_person', 'scheme', 'other', 'id', 'S' || i,
                   'name', CASE WHEN i = 123457 THEN 'Qilin Unique Trading' ELSE 'Company ' || i || ' Trading' END)),
               now(), now()
          FROM generate_series(1, 200000) AS i
        """
    )
    schema = await pool.fetchval("SELECT current_schema()")
    await admin.execute(f"ANALYZE {schema}.entries")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        plan = await conn.fetch("EXPLAIN " + public.SEARCH, public.like_pattern("QILIN unique"), None, "", 20)
    text = "\n".join(r[0] for r in plan)
    assert "entries_search" in text, text
    assert "Seq Scan" not in text, text
    (hit,) = await public.search(pool, "qilin unique", None, "", 20)
    assert hit["entry_id"] == "e0123457"
    assert [r["entry_id"] for r in await public.search(pool, "company 19999", "black", "", 20)] == [
        "e0019999",
        *(f"e0{199990 + i}" for i in range(10)),
    ]
    assert await public.search(pool, "100%", None, "", 20) == []  # LIKE's wildcards are literal


async def test_the_standards_and_memorandums_in_force_are_published(http: httpx.AsyncClient) -> None:
    standards = (await http.get("/v1/public/standards")).json()["standards"]
    by_code = {s["code"]: s for s in standards}
    black = by_code["taxation-black"]
    assert (black["list"], black["field"], black["restorable"], black["min_days_before_restoration"]) == (
        "black",
        "taxation",
        True,
        365,
    )
    assert black["legal_basis"]
    assert "status" not in black  # all of them are in force
    reds = (await http.get("/v1/public/standards", params={"list": "red"})).json()["standards"]
    assert reds
    assert {s["list"] for s in reds} == {"red"}
    mous = (await http.get("/v1/public/mous")).json()["mous"]
    assert mous
    assert all(m["measures"] and m["signed_on"] for m in mous)
    taxation = (await http.get("/v1/public/mous", params={"field": "taxation"})).json()["mous"]
    assert taxation
    assert all("taxation" in m["fields"] for m in taxation)


async def test_publication_delay_per_unit_and_the_public_statistics(
    stack: Settings, http: httpx.AsyncClient, kafka: AIOKafkaProducer, lists: Collector
) -> None:
    """Three entries of one unit decided 2, 10 and 12 days ago, published now, and one of its
    historical import decided a year ago: the delays (p50, p90, max) and the two late entries,
    every change carrying `decided_on` and `published_at`; the public statistics count them."""
    unit, region = f"T-{uuid.uuid4().hex[:10]}", "960101"
    today = datetime.now(SHANGHAI).date()
    at = datetime.now(UTC) - timedelta(minutes=5)
    recs = [
        record(company(f"Delay {d} Co."), unit=unit, region=region, decided_on=today - timedelta(days=d))
        for d in (2, 10, 12)
    ]
    for rec in recs:
        await publish(kafka, created(rec, at))
    old = record(company("Imported Co."), unit=unit, region=region, decided_on=today - timedelta(days=365))
    imported = created(old, at)
    imported["causationid"] = new_id()  # an import request: its entries are named after their refs
    await publish(kafka, imported)
    await caught_up(stack)

    ids = {r["designation_id"] for r in (*recs, old)}
    added = await lists.wait_for(
        topics.LISTS_PUBLIC,
        lambda e: e["type"] == "credit.list.entry_added" and e["data"]["entry"]["entry_id"] in ids,
        count=4,
        timeout=60,
    )
    for change in added:
        data = change["data"]
        assert data["decided_on"] == data["entry"]["decision"]["decided_on"]
        assert datetime.fromisoformat(data["published_at"]) >= at
        ListChange.model_validate(data)

    days = {r["designation_id"]: d for r, d in zip(recs, (2, 10, 12), strict=True)}
    body = (await http.get("/v1/stats/publication", params={"unit": unit})).json()
    (row,) = body["units"]
    # published today (a change made just after midnight, Shanghai, is a day later)
    assert row["entries"] == 3
    assert row["p50_days"] in (10, 11)
    assert row["max_days"] in (12, 13)
    assert row["late"] == 2
    assert body["late_after_days"] == 7
    assert sorted(e["entry_id"] for e in body["late"]) == sorted(i for i, d in days.items() if d > 7)
    async with httpx.AsyncClient(base_url=str(http.base_url)) as anonymous:
        assert (await anonymous.get("/v1/stats/publication")).status_code == 401  # internal
        assert (await anonymous.get("/v1/public/stats")).status_code == 200  # open

    stats = (await http.get("/v1/public/stats", params={"year": today.year})).json()
    mine = [r for r in stats["on_lists"] if r["province"] == "960000"]
    assert mine == [{"list": "black", "field": "work_safety", "province": "960000", "entries": 4}]
    assert stats["publication"]["entries"] >= 3
    month = today.strftime("%Y-%m")
    assert any(m["month"] == month and m["list"] == "black" and m["added"] >= 4 for m in stats["by_month"])


async def test_the_statistics_count_days_and_years_from_midnight_in_shanghai(
    stack: Settings, sharing: ServiceProcess
) -> None:
    """A change published at 00:30 on 1 January, Shanghai (16:30 the day before in UTC), is of the
    new year and of that day, whatever the database session's zone. The rows go in a transaction
    that is rolled back, so no other test sees them."""
    unit = f"T-{uuid.uuid4().hex[:10]}"
    before = datetime(2019, 12, 31, 23, 30, tzinfo=SHANGHAI)
    after = datetime(2020, 1, 1, 0, 30, tzinfo=SHANGHAI)
    db = await asyncpg.connect(stack.database_url)
    try:
        async with db.transaction():
            # the tables of this module's sharing deployment (a fresh stack has no default one)
            await db.execute(f"SET LOCAL search_path = {sharing.schema}; SET LOCAL TimeZone = 'UTC'")
            for seq, at in ((-900_000_001, before), (-900_000_002, after)):
                await db.execute(
                    """INSERT INTO changes (seq, event_id, type, list, entry_id, subject_id, field, unit, region,
                                            public, at, cause, public_sent, data, decided_on, published_at)
                       VALUES ($1, $2, 'credit.list.entry_added', 'black', $2, $2, 'taxation', $3, '960101',
                               true, $4, 'test', true, '{}', '2019-12-20', $4)""",
                    seq,
                    new_id(),
                    unit,
                    at,
                )
            (row,) = (await publication.by_unit_in(db, date(2020, 1, 1), unit, 10))["units"]
            assert row["entries"] == 1  # the one published on 1 January, Shanghai
            stats = await publication.public_stats_in(db, 2020)
            assert [(m["month"], m["added"]) for m in stats["by_month"] if m["list"] == "black"] == [("2020-01", 1)]
            assert stats["publication"]["entries"] == 1
            raise Rollback
    except Rollback:
        pass
    finally:
        await db.close()


class Rollback(Exception):
    """Leaves the test's rows out of the shared database."""
