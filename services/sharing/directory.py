"""Who receives the lists (the notice, section V): the liaison each unit named, from the
reference catalogue (`GET /v1/liaisons`), and the record of every export and snapshot downloaded,
by whom and when (`GET /v1/downloads`, and on the sharing dashboard). Both internal."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import asyncpg
from credit_common.http.auth import PRINCIPAL_KEY
from credit_common.http.responses import JsonResponse
from credit_common.service import Runtime
from credit_common.telemetry.logging import get_logger
from fastapi import FastAPI, Query
from starlette.types import Scope

from . import queries
from .store import Filters

log = get_logger(__name__)

RECORD = """
INSERT INTO downloads (at, principal, kind, public, list, format, filters, snapshot_seq, bytes, outcome)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10)
"""
LATEST = """
SELECT download_id, at, principal, kind, public, list, format, filters, snapshot_seq, bytes, outcome
  FROM downloads
 WHERE ($1::text IS NULL OR principal = $1) AND ($2::text IS NULL OR kind = $2)
   AND ($3::bigint IS NULL OR download_id < $3)
 ORDER BY at DESC, download_id DESC LIMIT $4
"""


def who(scope: Scope) -> str:
    """The principal of a request (its token's `sub`), or for an open one its client address."""
    principal = scope.get(PRINCIPAL_KEY)
    if principal is not None:
        return str(principal.sub)
    client = scope.get("client")
    return f"anonymous@{client[0]}" if client else "anonymous"


async def record(
    pool: asyncpg.Pool,
    *,
    at: datetime,
    principal: str,
    kind: str,
    list_: str,
    filters: Filters,
    fmt: str | None = None,
    snapshot_seq: int | None = None,
    size: int | None = None,
    complete: bool = True,
) -> None:
    """Keep one download. A failure to keep it is logged, never the download's failure."""
    doc = {k: v for k, v in (("field", filters.field), ("unit", filters.unit), ("region", filters.region_prefix)) if v}
    try:
        await pool.execute(
            RECORD,
            at,
            principal,
            kind,
            filters.public_only,
            list_,
            fmt,
            doc,
            snapshot_seq,
            size,
            "complete" if complete else "failed",
        )
    except Exception as exc:  # the download went out (or failed) already
        log.error("download_not_recorded", kind=kind, list=list_, principal=principal, error=type(exc).__name__)


async def latest(
    pool: asyncpg.Pool, principal: str | None, kind: str | None, before: int | None, limit: int
) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(LATEST, principal, kind, before, limit)]


def liaisons(rt: Runtime, region: str | None, field: str | None) -> list[dict[str, Any]]:
    out = []
    for u in sorted(rt.reference.catalog.units(), key=lambda u: u.code):
        if not u.active or u.liaison is None:
            continue
        if region is not None and not u.region.startswith(str(queries.region_prefix(region))):
            continue
        if field is not None and field not in u.authorised_fields:
            continue
        out.append(
            {
                "unit": u.code,
                "name": u.name,
                "level": u.level,
                "region": u.region,
                "fields": list(u.authorised_fields),
                "liaison": u.liaison.model_dump(mode="json"),
            }
        )
    return out


def routes(app: FastAPI, rt: Runtime) -> None:
    @app.get("/v1/liaisons", response_class=JsonResponse, summary="The liaison each active unit named")
    async def get_liaisons(
        region: Annotated[str | None, Query(pattern=r"^\d{6}$", description="a province or prefecture covers")] = None,
        field: Annotated[str | None, Query(max_length=64)] = None,
    ) -> JsonResponse:
        return JsonResponse({"liaisons": liaisons(rt, region, field)})

    @app.get(
        "/v1/downloads",
        response_class=JsonResponse,
        summary="Exports and snapshots downloaded, by whom and when (latest first)",
    )
    async def get_downloads(
        principal: Annotated[str | None, Query(max_length=200)] = None,
        kind: Annotated[str | None, Query(pattern=r"^(export|snapshot)$")] = None,
        before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="download_id to page before")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> JsonResponse:
        rows = await latest(rt.db, principal, kind, before, limit)
        nxt = rows[-1]["download_id"] if len(rows) >= limit else None
        return JsonResponse({"downloads": rows, "next_before": nxt})
