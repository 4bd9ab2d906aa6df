"""How fast the lists are published, and what is on them (contracts.md, Additions).

- `GET /v1/stats/publication` (internal): per designating unit, the days from an entry's
  decision to its publication on the platform (p50, p90, max) and the entries published more than
  7 days after their decision, which the dashboard lists.
- `GET /v1/public/stats?year=` (open; the notice's section VII publishes the efficacy): the public
  entries on each list now by field and province, the additions and removals of the year by month,
  and the median days from decision to publication of the year's public additions.

Days are counted in Asia/Shanghai between the decision's date and the day of publication.
Entries of a historical import are left out of the delays (they were published where and when
they were decided)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import asyncpg
from credit_common.clock import local_today, start_of_local_day
from credit_common.http.responses import JsonResponse
from credit_common.service import Runtime
from fastapi import FastAPI, Query

from . import domain

LATE_DAYS = 7
_ADDED_TYPE, _REMOVED_TYPE = domain.ENTRY_ADDED, domain.ENTRY_REMOVED
_DAYS = "((c.published_at AT TIME ZONE 'Asia/Shanghai')::date - c.decided_on)"
_ADDED = f"c.type = '{_ADDED_TYPE}' AND c.decided_on IS NOT NULL AND NOT c.imported"

BY_UNIT = f"""
SELECT c.unit, count(*) AS entries,
       percentile_disc(0.5) WITHIN GROUP (ORDER BY {_DAYS}) AS p50_days,
       percentile_disc(0.9) WITHIN GROUP (ORDER BY {_DAYS}) AS p90_days,
       max({_DAYS}) AS max_days,
       count(*) FILTER (WHERE {_DAYS} > {LATE_DAYS}) AS late
  FROM changes c
 WHERE {_ADDED} AND ($1::timestamptz IS NULL OR c.published_at >= $1) AND ($2::text IS NULL OR c.unit = $2)
 GROUP BY c.unit ORDER BY c.unit
"""
LATE = f"""
SELECT c.entry_id, c.list, c.unit, c.decided_on, c.published_at, {_DAYS} AS days
  FROM changes c
 WHERE {_ADDED} AND {_DAYS} > {LATE_DAYS}
   AND ($1::timestamptz IS NULL OR c.published_at >= $1) AND ($2::text IS NULL OR c.unit = $2)
 ORDER BY c.published_at DESC, c.entry_id LIMIT $3
"""
ON_LISTS = """
SELECT list, field, left(region, 2) || '0000' AS province, count(*) AS entries
  FROM entries WHERE public AND status = 'active'
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
BY_MONTH = f"""
SELECT to_char(c.at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM') AS month, c.list,
       count(*) FILTER (WHERE c.type = '{_ADDED_TYPE}') AS added,
       count(*) FILTER (WHERE c.type = '{_REMOVED_TYPE}') AS removed
  FROM changes c
 WHERE c.public_sent AND c.at >= $1 AND c.at < $2
 GROUP BY 1, 2 ORDER BY 1, 2
"""
MEDIAN_DELAY = f"""
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY {_DAYS}) AS median_days, count(*) AS entries
  FROM changes c
 WHERE {_ADDED} AND c.public_sent AND c.published_at >= $1 AND c.published_at < $2
"""


async def by_unit(pool: asyncpg.Pool, since: date | None, unit: str | None, late_limit: int) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return await by_unit_in(conn, since, unit, late_limit)


async def by_unit_in(conn: asyncpg.Connection, since: date | None, unit: str | None, late_limit: int) -> dict[str, Any]:
    """`since` is a day of Asia/Shanghai: from its midnight there, whatever the session's zone."""
    start = None if since is None else start_of_local_day(since)
    units = [dict(r) for r in await conn.fetch(BY_UNIT, start, unit)]
    late = [dict(r) for r in await conn.fetch(LATE, start, unit, late_limit)]
    return {"late_after_days": LATE_DAYS, "units": units, "late": late}


async def public_stats(pool: asyncpg.Pool, year: int) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return await public_stats_in(conn, year)


async def public_stats_in(conn: asyncpg.Connection, year: int) -> dict[str, Any]:
    """The year runs from midnight of 1 January, Asia/Shanghai (not the session's zone)."""
    start, end = start_of_local_day(date(year, 1, 1)), start_of_local_day(date(year + 1, 1, 1))
    on_lists = [dict(r) for r in await conn.fetch(ON_LISTS)]
    months = [dict(r) for r in await conn.fetch(BY_MONTH, start, end)]
    delay = await conn.fetchrow(MEDIAN_DELAY, start, end)
    median = delay["median_days"]
    return {
        "year": year,
        "on_lists": on_lists,
        "by_month": months,
        "publication": {
            "entries": delay["entries"],
            "median_days_from_decision": None if median is None else float(median),
        },
    }


def routes(app: FastAPI, rt: Runtime) -> None:
    @app.get(
        "/v1/stats/publication",
        response_class=JsonResponse,
        summary="Days from decision to publication per designating unit, and the entries later than 7 days",
    )
    async def publication(
        since: Annotated[date | None, Query(description="only entries published on or after this day")] = None,
        unit: Annotated[str | None, Query(max_length=64)] = None,
        late_limit: Annotated[int, Query(ge=0, le=1000)] = 100,
    ) -> JsonResponse:
        return JsonResponse(await by_unit(rt.db, since, unit, late_limit))

    @app.get(
        "/v1/public/stats",
        response_class=JsonResponse,
        summary="Public: entries on the lists, additions and removals by month, publication delay",
    )
    async def stats(year: Annotated[int | None, Query(ge=2014, le=2100)] = None) -> JsonResponse:
        return JsonResponse(await public_stats(rt.db, year or local_today(rt.clock).year))
