"""Campaigns of special handling of prominent problems in key areas (the notice, section VI;
contracts.md, Additions): what the designations and enforcement cases that name a campaign add up
to, against its targets. `GET /v1/campaigns` lists every campaign of the catalogue with its
progress, `GET /v1/campaigns/{code}` breaks one down by field and province; the cases dashboard
shows them.

Progress of a target: the value so far, the projection at the campaign's end (pro rata of the
days elapsed) and a status: `not_started`; while it runs `met`, `on_track` (the projection reaches
the target) or `at_risk`; once it has ended `met` or `missed`."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg
from credit_common.clock import local_today
from credit_common.contracts.reference import CampaignRecord
from credit_common.http.problems import Problem
from credit_common.http.responses import JsonResponse
from credit_common.service import Runtime
from fastapi import FastAPI

DESIGNATIONS = """
SELECT record ->> 'campaign' AS campaign, field, province, count(*) AS n
  FROM designations WHERE record ? 'campaign' AND record ->> 'campaign' = ANY($1::text[])
 GROUP BY 1, 2, 3
"""
CASES = """
SELECT campaign, field, province, count(*) AS n, count(*) FILTER (WHERE typical) AS typical
  FROM cases WHERE campaign = ANY($1::text[])
 GROUP BY 1, 2, 3
"""


def elapsed(c: CampaignRecord, today: date) -> float:
    """The share of the campaign's days that are over (today counted), 0 before it starts."""
    if today < c.starts_on:
        return 0.0
    days = (c.ends_on - c.starts_on).days + 1
    return min(1.0, ((min(today, c.ends_on) - c.starts_on).days + 1) / days)


def target_progress(value: int, target: int | None, c: CampaignRecord, today: date) -> dict[str, Any] | None:
    if target is None:
        return None
    share = elapsed(c, today)
    projection = round(value / share, 1) if share > 0 else None
    if today < c.starts_on:
        status = "not_started"
    elif today > c.ends_on:
        status = "met" if value >= target else "missed"
    elif value >= target:
        status = "met"
    else:
        status = "on_track" if projection is not None and projection >= target else "at_risk"
    return {"target": target, "value": value, "projection": projection, "status": status}


def progress(c: CampaignRecord, designations: int, cases: int, today: date) -> dict[str, Any]:
    return {
        "code": c.code,
        "title": c.title,
        "fields": list(c.fields),
        "regions": list(c.regions),
        "starts_on": c.starts_on,
        "ends_on": c.ends_on,
        "elapsed_fraction": round(elapsed(c, today), 4),
        "designations": target_progress(designations, c.targets.designations, c, today) or {"value": designations},
        "cases": target_progress(cases, c.targets.cases, c, today) or {"value": cases},
    }


async def counts(pool: asyncpg.Pool, codes: list[str]) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        return list(await conn.fetch(DESIGNATIONS, codes)), list(await conn.fetch(CASES, codes))


async def report(rt: Runtime, code: str | None = None) -> list[dict[str, Any]]:
    """Every campaign of the catalogue (or the one named) with its progress as of today."""
    campaigns = sorted(rt.reference.catalog.campaigns(), key=lambda c: (c.starts_on, c.code))
    if code is not None:
        campaigns = [c for c in campaigns if c.code == code]
    designations, cases = await counts(rt.db, [c.code for c in campaigns])
    today = local_today(rt.clock)
    out = []
    for c in campaigns:
        d = [r for r in designations if r["campaign"] == c.code]
        k = [r for r in cases if r["campaign"] == c.code]
        doc = progress(c, sum(r["n"] for r in d), sum(r["n"] for r in k), today)
        if code is not None:
            doc["by"] = _breakdown(d, k)
        out.append(doc)
    return out


def _breakdown(designations: list[asyncpg.Record], cases: list[asyncpg.Record]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in designations:
        rows.setdefault((r["field"], r["province"]), {"designations": 0, "cases": 0, "typical_cases": 0})
        rows[(r["field"], r["province"])]["designations"] += r["n"]
    for r in cases:
        rows.setdefault((r["field"], r["province"]), {"designations": 0, "cases": 0, "typical_cases": 0})
        rows[(r["field"], r["province"])]["cases"] += r["n"]
        rows[(r["field"], r["province"])]["typical_cases"] += r["typical"]
    return [{"field": f, "province": p, **v} for (f, p), v in sorted(rows.items())]


def routes(app: FastAPI, rt: Runtime) -> None:
    @app.get("/v1/campaigns", summary="Campaigns of special handling with their progress against targets")
    async def get_campaigns() -> JsonResponse:
        return JsonResponse({"as_of": local_today(rt.clock), "campaigns": await report(rt)})

    @app.get("/v1/campaigns/{code}", summary="One campaign's progress, by field and province")
    async def get_campaign(code: str) -> JsonResponse:
        found = await report(rt, code)
        if not found:
            raise Problem(404, "Unknown campaign", f"no campaign {code!r} in the reference catalogue")
        return JsonResponse({"as_of": local_today(rt.clock), **found[0]})
