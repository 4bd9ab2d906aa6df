"""The objection service's panels of the operator dashboard (GET /): open and overdue objections
and restoration applications, in all and per designating unit, every item open past its due date
with its age and how far up the chain it was escalated, and the latest filed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from credit_common.clock import local_today
from credit_common.http.panels import Bar, BarChart, KeyValues, Link, Panel, Stat, Table
from credit_common.service import Runtime

from . import store

RECENT = 10
OVERDUE_SHOWN = 100
UNITS_SHOWN = 25
# One bar series per (kind, status) of a pending item, in this order.
SERIES = ("objection_open", "objection_overdue", "restoration_open", "restoration_overdue")


def _per_unit(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    units: dict[str, dict[str, int]] = {}
    for r in rows:
        units.setdefault(r["unit"], dict.fromkeys(SERIES, 0))[f"{r['kind']}_{r['status']}"] = int(r["n"])
    return units


def _item(kind: str, item_id: str) -> Link:
    return Link(item_id, f"/v1/objections/{item_id}" if kind == "objection" else f"/v1/restorations/{item_id}")


def _designation(designation_id: str) -> Link:
    return Link(designation_id, f"/v1/designations/{designation_id}", service="designation")


async def _history(rt: Runtime) -> dict[str, Any]:
    return {"counts": await store.item_counts(rt.db), "recent": await store.recent_items(rt.db, RECENT)}


async def panels(rt: Runtime) -> Sequence[Panel]:
    units = _per_unit(await store.pending_by_unit(rt.db))
    totals = {s: sum(u[s] for u in units.values()) for s in SERIES}
    history = await rt.dashboard.cached("history", lambda: _history(rt))
    decided = {(r["kind"], r["status"]): int(r["n"]) for r in history.value["counts"]}
    overdue_count, overdue = await store.overdue_items(rt.db, OVERDUE_SHOWN)
    more = f", the {OVERDUE_SHOWN} oldest shown" if overdue_count > OVERDUE_SHOWN else ""
    today = local_today(rt.clock)
    busiest = sorted(units.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:UNITS_SHOWN]
    return [
        KeyValues(
            "pending",
            "Open and overdue",
            [
                *(Stat(s, s.replace("_", " "), n) for s, n in totals.items()),
                Stat("objection_resolved", "objections decided", decided.get(("objection", "resolved"), 0)),
                Stat("restoration_resolved", "restorations decided", decided.get(("restoration", "resolved"), 0)),
            ],
            note=f"decided: {history.note}",
        ),
        BarChart(
            "per_unit",
            "Open and overdue per designating unit",
            [
                Bar(unit, unit, tuple(counts[s] for s in SERIES), href=f"/v1/units/{unit}/inbox")
                for unit, counts in busiest
            ],
            series=SERIES,
            note=f"the {UNITS_SHOWN} units with most pending" if len(units) > UNITS_SHOWN else None,
            empty="nothing pending",
        ),
        Table(
            "overdue",
            "Open past the due date, escalated up the chain (oldest first)",
            ["item", "kind", "designation", "unit", "escalated to", "steps", "was due", "days past due", "next step"],
            [
                [
                    _item(r["kind"], r["item_id"]),
                    r["kind"],
                    _designation(r["designation_id"]),
                    r["unit"],
                    r["escalated_to"],
                    r["escalations"],
                    r["due_on"],
                    (today - r["due_on"]).days,
                    r["escalation_due_on"] or "top of the chain",
                ]
                for r in overdue
            ],
            note=f"{overdue_count} overdue{more}",
            empty="nothing overdue",
        ),
        Table(
            "recent",
            "Latest filed",
            ["item", "kind", "designation", "unit", "status", "outcome", "due on", "filed"],
            [
                [
                    _item(r["kind"], r["item_id"]),
                    r["kind"],
                    _designation(r["designation_id"]),
                    r["unit"],
                    r["status"],
                    r["outcome"],
                    r["due_on"],
                    r["filed_at"],
                ]
                for r in history.value["recent"]
            ],
            note=history.note,
        ),
    ]
