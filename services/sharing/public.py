"""What the public asks first (contracts.md, Additions): is this company on a list? (search by a
part of the name or of the identifier, the masked form for natural persons), and under which
published standards and memorandums. Open to anyone, like the rest of `/v1/public/`; every entry
goes out through `domain.public_view`."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import asyncpg
from credit_common.clock import local_today
from credit_common.http.cursors import decode_cursor, encode_cursor
from credit_common.http.problems import Problem
from credit_common.http.responses import JsonResponse
from credit_common.service import Runtime
from fastapi import FastAPI, Query

from . import domain

#: Fewer characters than a trigram cannot use the index: such a search would scan every entry.
MIN_QUERY = 3
MAX_QUERY = 100
DEFAULT_RESULTS = 20
MAX_RESULTS = 100

# Public entries on their lists whose search text (the public view's name and identifier,
# migration 002) holds $1, of list $2 (null: any), after entry id $3, at most $4. The trigram index
# answers the LIKE; a custom plan for each pattern lets the planner see that it may.
SEARCH = """
SELECT entry_id, entry FROM entries
 WHERE public AND status = 'active' AND search LIKE $1
   AND ($2::text IS NULL OR list = $2) AND entry_id > $3
 ORDER BY entry_id LIMIT $4
"""


def like_pattern(q: str) -> str:
    """`%part%` for LIKE, lower case (as the search column is), with LIKE's own wildcards in `q`
    taken literally."""
    escaped = q.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search(pool: asyncpg.Pool, q: str, list_: str | None, after: str, limit: int) -> list[asyncpg.Record]:
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        return list(await conn.fetch(SEARCH, like_pattern(q), list_, after, limit))


def _standard(std: Any) -> dict[str, Any]:
    return std.model_dump(mode="json", exclude_none=True, exclude={"kind", "status"})


def routes(app: FastAPI, rt: Runtime) -> None:
    @app.get(
        "/v1/public/search",
        response_class=JsonResponse,
        summary="Public: entries on the lists whose subject's name or identifier holds q (masked)",
    )
    async def public_search(
        q: Annotated[
            str,
            Query(
                min_length=MIN_QUERY,
                max_length=MAX_QUERY,
                description="a part of the subject's name or identifier (a natural person's in its masked form)",
            ),
        ],
        list_name: Annotated[str | None, Query(alias="list")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_RESULTS)] = DEFAULT_RESULTS,
        cursor: str | None = None,
    ) -> JsonResponse:
        if len(q.strip()) < MIN_QUERY:
            raise Problem(422, "Query too short", f"q needs at least {MIN_QUERY} characters besides spaces")
        if list_name is not None and list_name not in domain.LISTS:
            raise Problem(404, "Unknown list", f"the lists are {', '.join(domain.LISTS)}")
        scope = {"q": q, "list": list_name}
        after = str(decode_cursor(cursor, scope)["after"]) if cursor else ""
        rows = await search(rt.db, q, list_name, after, limit)
        entries = [e for e in (domain.public_view(r["entry"], public=True) for r in rows) if e is not None]
        next_cursor = encode_cursor({**scope, "after": rows[-1]["entry_id"]}) if len(rows) >= limit else None
        return JsonResponse({"q": q, "list": list_name, "entries": entries, "next_cursor": next_cursor})

    @app.get(
        "/v1/public/standards",
        response_class=JsonResponse,
        summary="Public: the designation standards in force (notice, section I)",
    )
    async def public_standards(
        list_name: Annotated[str | None, Query(alias="list")] = None,
        field: Annotated[str | None, Query(max_length=64)] = None,
    ) -> JsonResponse:
        standards = [
            _standard(s)
            for s in rt.reference.catalog.standards()
            if s.status == "in_force"
            and (list_name is None or s.list == list_name)
            and (field is None or s.field == field)
        ]
        return JsonResponse({"standards": sorted(standards, key=lambda s: s["code"])})

    @app.get(
        "/v1/public/mous",
        response_class=JsonResponse,
        summary="Public: the memorandums in force and the measures each applies",
    )
    async def public_mous(field: Annotated[str | None, Query(max_length=64)] = None) -> JsonResponse:
        today: date = local_today(rt.clock)
        mous = [
            m.model_dump(mode="json", exclude_none=True, exclude={"kind"})
            for m in rt.reference.catalog.mous()
            if m.signed_on <= today and (field is None or field in m.fields)
        ]
        return JsonResponse({"mous": sorted(mous, key=lambda m: m["code"])})
