"""The warning service's panels of the operator dashboard (GET /): the Big Data Warning List (its
size, key fields, latest changes) and the transfer recommendations (open, overdue, closed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from credit_common.http.panels import Bar, BarChart, KeyValues, Link, Panel, Stat, Table
from credit_common.service import Runtime

from . import store

RECENT = 10
BARS = 15
TRANSFER_STATUSES = ("open", "overdue", "closed")


async def _warnings(rt: Runtime) -> dict[str, Any]:
    return {
        "counts": await store.warning_counts(rt.db),
        "by_field": await store.listed_by_field(rt.db),
        "recent": await store.recent_warnings(rt.db, RECENT),
        "entries": await store.entry_count(rt.db),
    }


def _subject(subject_id: str) -> Link:
    return Link(subject_id, f"/v1/warnings/{subject_id}")


async def panels(rt: Runtime) -> Sequence[Panel]:
    warnings = await rt.dashboard.cached("warnings", lambda: _warnings(rt))
    w = warnings.value
    transfers = await store.recommendation_counts(rt.db)
    pending = await store.pending_transfers(rt.db, RECENT)
    return [
        KeyValues(
            "warning_list",
            "Big Data Warning List",
            [
                Stat("listed", "subjects on the list", w["counts"].get("listed", 0), href="/v1/warnings"),
                Stat(
                    "cleared",
                    "subjects that left it",
                    w["counts"].get("cleared", 0),
                    href="/v1/warnings?status=cleared",
                ),
                Stat("key_scrutiny_entries", "active key-scrutiny entries followed", w["entries"]),
            ],
            note=warnings.note,
        ),
        BarChart(
            "transfers",
            "Transfer recommendations",
            [Bar(s, s, (transfers.get(s, 0),), href=f"/v1/transfers?status={s}") for s in TRANSFER_STATUSES],
            href="/v1/transfers",
        ),
        BarChart(
            "fields",
            "Listed subjects per key field",
            [Bar(field, field.replace("_", " "), (n,)) for field, n in w["by_field"][:BARS]],
            note=warnings.note + (f"; the {BARS} largest of {len(w['by_field'])}" if len(w["by_field"]) > BARS else ""),
            empty="nobody is on the list",
        ),
        Table(
            "recent",
            "Latest warning-list changes",
            ["subject", "name", "status", "key fields", "since", "changed"],
            [
                [_subject(r["subject_id"]), r["name"], r["status"], ", ".join(r["fields"]), r["since"], r["updated_at"]]
                for r in w["recent"]
            ],
            note=warnings.note,
        ),
        Table(
            "pending_transfers",
            "Pending transfers, soonest due first",
            ["recommendation", "subject", "designation", "unit", "field", "status", "due on", "escalated to"],
            [
                [
                    r["recommendation_id"],
                    Link(r["subject_id"], f"/v1/transfers?subject={r['subject_id']}"),
                    Link(r["designation_id"], f"/v1/designations/{r['designation_id']}", service="designation"),
                    r["unit"],
                    r["field"],
                    r["status"],
                    r["due_on"],
                    r["escalated_to"],
                ]
                for r in pending
            ],
            empty="no transfer pending",
        ),
    ]
