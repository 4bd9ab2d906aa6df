"""The cases service's panels of the operator dashboard (GET /): this year's cases and their
indicators per province with status, cases per measure, the latest cases applied, and the
campaigns' progress against their targets. Everything
but the latest cases comes from the tallies (a few hundred rows whatever the number of cases)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from credit_common.clock import local_today
from credit_common.http.panels import Bar, BarChart, KeyValues, Link, Panel, Stat, Table
from credit_common.service import Runtime

from . import campaigns, store
from .indicators import indicator_report  # the same answer as GET /v1/indicators

RECENT = 10
MEASURES_SHOWN = 20


def _indicator(scope: dict[str, Any], code: str) -> dict[str, Any] | None:
    return next((i for i in scope["indicators"] if i["code"] == code), None)


async def panels(rt: Runtime) -> Sequence[Panel]:
    today = local_today(rt.clock)
    year = today.year
    report = await indicator_report(rt, year, None)
    national, provinces = report["scopes"][0], report["scopes"][1:]
    share = _indicator(national, "case_share") or {}
    by = await rt.dashboard.cached("tallies", lambda: store.tallies(rt.db, year, None))
    totals = await rt.dashboard.cached("counts", lambda: store.counts(rt.db))
    designations = totals.value["designations"]
    measures = sorted(by.value["measure"], key=lambda r: (-r["cases"], r["key"]))[:MEASURES_SHOWN]
    recent = await store.recent_cases(rt.db, RECENT, today)
    progress = await rt.dashboard.cached("campaigns", lambda: campaigns.report(rt))
    return [
        KeyValues(
            "year",
            f"Cases in {year}",
            [
                Stat("cases", "cases", national["cases"], href=f"/v1/cases?year={year}"),
                Stat("media_reported", "media-reported", national["media_reported_cases"]),
                Stat("red_black_designations", "red and black designations made", national["red_black_designations"]),
                Stat("case_share", "cases / designations (target 10%)", share.get("value")),
                Stat("designations_active", "designations on their lists", designations.get("active", 0)),
            ],
            note=f"case share: {share.get('status', 'n/a')}; designations: {totals.note}",
            href=f"/v1/indicators?year={year}",
        ),
        Table(
            "indicators",
            f"Indicators per province, {year} (as of {report['as_of']})",
            [
                "province",
                "cases",
                "designations",
                "share",
                "share status",
                "media",
                "projection",
                "media status",
                "in words",
            ],
            [
                [
                    Link(s["province"], f"/v1/indicators?year={year}&province={s['province']}"),
                    s["cases"],
                    s["red_black_designations"],
                    (_indicator(s, "case_share") or {}).get("value"),
                    (_indicator(s, "case_share") or {}).get("status"),
                    s["media_reported_cases"],
                    (_indicator(s, "media_reported_cases") or {}).get("projection"),
                    (_indicator(s, "media_reported_cases") or {}).get("status"),
                    " · ".join(i["in_words"] for i in s["indicators"]),
                ]
                for s in provinces
            ],
            href=f"/v1/indicators?year={year}",
        ),
        BarChart(
            "per_measure",
            f"Cases per measure, {year}",
            [
                Bar(r["key"], r["key"], (r["cases"],), href=f"/v1/cases?year={year}&measure={r['key']}")
                for r in measures
            ],
            series=("cases",),
            note=by.note,
            empty="no case this year",
        ),
        Table(
            "recent",
            "Latest cases applied",
            ["case", "designation", "measure", "kind", "unit", "province", "applied on", "typical", "media"],
            [
                [
                    Link(r["case_id"], f"/v1/cases/{r['case_id']}"),
                    Link(r["designation_id"], f"/v1/designations/{r['designation_id']}", service="designation"),
                    r["measure"],
                    r["measure_kind"],
                    r["unit"],
                    r["province"],
                    r["applied_on"],
                    r["typical"],
                    r["media_reported"],
                ]
                for r in recent
            ],
            empty="no case yet",
        ),
        Table(
            "campaigns",
            "Campaigns of special handling: progress against targets",
            ["campaign", "period", "elapsed", "designations", "target", "status", "cases", "target", "status"],
            [
                [
                    Link(c["code"], f"/v1/campaigns/{c['code']}"),
                    f"{c['starts_on']} to {c['ends_on']}",
                    c["elapsed_fraction"],
                    c["designations"]["value"],
                    c["designations"].get("target"),
                    c["designations"].get("status"),
                    c["cases"]["value"],
                    c["cases"].get("target"),
                    c["cases"].get("status"),
                ]
                for c in progress.value
            ],
            href="/v1/campaigns",
            note=progress.note,
            empty="no campaign in the catalogue",
        ),
    ]
