"""The case-quota indicators as `GET /v1/indicators` and the dashboard show them: the counts from
the store, the rules of each indicator from the domain, "today" from the platform clock."""

from __future__ import annotations

from typing import Any

from credit_common.clock import local_today
from credit_common.service import Runtime

from . import domain, store


async def indicator_report(rt: Runtime, year: int, province: str | None) -> dict[str, Any]:
    """The indicators of `year`, nationally and for every province (or for `province` alone), as
    of today by the platform clock."""
    today = local_today(rt.clock)
    cases, made = await store.indicator_counts(rt.db, year)
    provinces = {u.region[:2] + "0000" for u in rt.reference.catalog.units()} | set(cases) | set(made)
    provinces.discard(domain.NATIONAL)
    scopes = []
    if province is None:
        national = domain.ScopeCounts(
            cases=sum(c for c, _ in cases.values()),
            media_cases=sum(m for _, m in cases.values()),
            designations=sum(made.values()),
        )
        scopes.append(domain.indicators("national", None, national, year, today))
    for p in sorted(provinces) if province is None else [province]:
        c, m = cases.get(p, (0, 0))
        counts = domain.ScopeCounts(cases=c, media_cases=m, designations=made.get(p, 0))
        scopes.append(domain.indicators("province", p, counts, year, today))
    return {
        "year": year,
        "as_of": today,
        "elapsed_fraction": round(domain.elapsed_fraction(year, today), 4),
        "scopes": scopes,
    }
