"""The designation service's panels of the operator dashboard (GET /): active designations per list
and standard, the requests and their answers, the newest designations and removals, and expiry
(backlog and lateness)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from credit_common.clock import local_today
from credit_common.contracts import types as T
from credit_common.http.panels import Bar, BarChart, KeyValues, Link, Panel, Stat, Table
from credit_common.service import Runtime
from credit_common.telemetry.sampler import quantiles, read_histograms

from . import store

LISTS = ("red", "black", "key_scrutiny")
REQUEST_STATUSES = ("pending", "accepted", "rejected")
RECENT = 10
BARS = 15
FUTURE = timedelta(days=1)  # the latest rows: those not dated further ahead of the clock than this
EXPIRY_LATENESS = "credit_expiry_lateness_seconds"  # the expiry timer's histogram (handlers.py)


async def _per_list(rt: Runtime, by_standard: dict[str, int]) -> dict[str, int]:
    """Active entries per list: each standard belongs to one list (the catalogue says which, else a
    row of it does)."""
    lists = dict.fromkeys(LISTS, 0)
    for code, n in by_standard.items():
        standard = rt.reference.catalog.standard(code)
        name = str(standard.list) if standard is not None else await store.list_of_standard(rt.db, code)
        lists[name or "unknown"] = lists.get(name or "unknown", 0) + n
    return lists


def _subject(subject_id: str) -> Link:
    return Link(subject_id, f"/v1/subjects/{subject_id}", service="sharing")


def _designation(designation_id: str | None) -> Link | None:
    return Link(designation_id, f"/v1/designations/{designation_id}") if designation_id else None


def _answer(row: dict[str, Any]) -> Any:
    if row["status"] == "rejected":
        return ", ".join(sorted({str(e.get("code")) for e in row["errors"] or []}))
    if row["status"] == "accepted" and row["request_type"] == T.DESIGNATION_DESIGNATE:
        return _designation(row["result_id"])
    return row["result_id"]


def _expiry(rt: Runtime, backlog: dict[str, Any]) -> KeyValues:
    buckets = read_histograms(rt.registry, EXPIRY_LATENESS, by=None).get("", ())
    p50, p95, p99 = quantiles(buckets)
    next_day: date | None = backlog["next_last_day"]
    days = (next_day - local_today(rt.clock)).days if next_day is not None else None

    def s(v: float | None) -> float | None:
        return None if v is None else round(v, 3)

    return KeyValues(
        "expiry",
        "Expiry",
        [
            Stat("overdue", "past their last day, still active", backlog["overdue"]),
            Stat("next_in_days", "days to the next last day", days),
            Stat("expired", "expired by this instance", int(buckets[-1][1]) if buckets else 0),
            Stat("lateness_p50", "lateness p50", s(p50), "s"),
            Stat("lateness_p95", "lateness p95", s(p95), "s"),
            Stat("lateness_p99", "lateness p99", s(p99), "s"),
        ],
        note="lateness: from the start of the day after the last day to the removal (since this instance started)",
    )


async def panels(rt: Runtime) -> Sequence[Panel]:
    cache = rt.dashboard.cached
    until = rt.clock.now() + FUTURE
    by_standard, requests, removals, recent, recent_requests, backlog = await asyncio.gather(
        store.active_by_standard(rt.db),
        cache("requests_by_status", lambda: store.requests_by_status(rt.db)),
        cache("recent_removals", lambda: store.recent_removals(rt.db, RECENT, until)),
        cache("recent_designations", lambda: store.recent_designations(rt.db, RECENT, until)),
        cache("recent_requests", lambda: store.recent_requests(rt.db, RECENT, until)),
        store.expiry(rt.db, local_today(rt.clock)),
    )
    lists = await _per_list(rt, by_standard)
    standards = sorted(by_standard.items(), key=lambda kv: (-kv[1], kv[0]))
    return [
        KeyValues(
            "active",
            "Active designations",
            [
                *(Stat(name, name.replace("_", " "), n) for name, n in lists.items()),
                Stat("total", "total", sum(lists.values())),
            ],
        ),
        BarChart(
            "requests",
            "Requests by answer",
            [Bar(status, status, (requests.value.get(status, 0),)) for status in REQUEST_STATUSES],
            note=requests.note,
        ),
        _expiry(rt, backlog),
        BarChart(
            "standards",
            "Active designations by standard",
            [Bar(code, code, (n,)) for code, n in standards[:BARS]],
            note=f"the {BARS} largest of {len(standards)}" if len(standards) > BARS else None,
        ),
        Table(
            "recent",
            "Latest designations",
            ["designation", "list", "standard", "unit", "subject", "status", "created"],
            [
                [
                    _designation(r["designation_id"]),
                    r["list"],
                    r["standard"],
                    r["unit"],
                    _subject(r["subject_id"]),
                    r["status"] if r["status"] == "active" else f"removed ({r['removal_reason']})",
                    r["created_at"],
                ]
                for r in recent.value
            ],
            note=recent.note,
        ),
        Table(
            "removals",
            "Latest removals",
            ["designation", "list", "standard", "unit", "subject", "reason", "removed"],
            [
                [
                    _designation(r["designation_id"]),
                    r["list"],
                    r["standard"],
                    r["unit"],
                    _subject(r["subject_id"]),
                    r["reason"],
                    r["updated_at"],
                ]
                for r in removals.value
            ],
            note=removals.note,
        ),
        Table(
            "requests_recent",
            "Latest requests",
            ["request", "type", "unit", "answer", "result or errors", "received"],
            [
                [
                    # A request is known by its unit and id: the link names both.
                    Link(
                        r["request_id"],
                        f"/v1/requests/{quote(r['request_id'], safe='')}?{urlencode({'unit': r['unit']})}",
                    ),
                    r["request_type"].removeprefix("credit."),
                    r["unit"],
                    r["status"],
                    _answer(r),
                    r["received_at"],
                ]
                for r in recent_requests.value
            ],
            note=recent_requests.note,
        ),
    ]
