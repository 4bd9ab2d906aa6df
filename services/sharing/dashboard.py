"""The sharing service's panels of the operator dashboard (GET /): the size of every list in the
current view, the last seq, the latest changes, the publication delay per unit with the entries
published more than 7 days after their decision, and the latest downloads (who, what, when)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from credit_common.http.panels import Bar, BarChart, KeyValues, Link, Panel, Stat, Table
from credit_common.service import Runtime

from . import directory, domain, publication, store

RECENT = 12
MIX_OF = 1000  # the latest changes the mix is counted over
RECOUNT_S = 600.0
DELAY_EVERY_S = 60.0  # the delays are an aggregate over every addition: read once a minute
SHORT = {domain.ENTRY_ADDED: "added", domain.ENTRY_UPDATED: "updated", domain.ENTRY_REMOVED: "removed"}


@dataclass
class ListSizes:
    """Each list's active entries as of `seq`: counted once, then moved on by the changes after it
    (store.list_sizes), so a refresh costs the new changes, not the 2 million entries. Counted
    afresh every `RECOUNT_S`, in case entries were loaded without a change (the benchmark's seed)."""

    seq: int | None = None
    mark: str | None = None  # event id of change `seq`: a rebuilt table is counted afresh
    sizes: dict[str, int] = field(default_factory=dict)
    counted_at: float = 0.0

    async def read(self, pool: asyncpg.Pool) -> dict[str, int]:
        fresh = self.seq is not None and time.monotonic() - self.counted_at < RECOUNT_S
        seq, mark, sizes, whole = await store.list_sizes(pool, (self.seq or 0, self.mark) if fresh else None)
        if whole:
            self.sizes = sizes
            self.counted_at = time.monotonic()
        else:
            for name, delta in sizes.items():
                self.sizes[name] = self.sizes.get(name, 0) + delta
        self.seq, self.mark = seq, mark
        return {name: self.sizes.get(name, 0) for name in domain.LISTS}


async def _delays(rt: Runtime) -> dict[str, Any]:
    cached = await rt.dashboard.cached(
        "publication", lambda: publication.by_unit(rt.db, None, None, RECENT), min_ttl=DELAY_EVERY_S
    )
    return cached.value


def _delay_panels(delays: dict[str, Any]) -> list[Panel]:
    late = publication.LATE_DAYS
    units = sorted(delays["units"], key=lambda u: (-u["late"], -u["max_days"], u["unit"]))
    return [
        Table(
            "publication",
            "Publication delay per unit (days from decision to publication)",
            ["unit", "entries", "p50", "p90", "max", f"later than {late} days"],
            [[u["unit"], u["entries"], u["p50_days"], u["p90_days"], u["max_days"], u["late"]] for u in units],
            href="/v1/stats/publication",
            empty="nothing published yet",
        ),
        Table(
            "late",
            f"Latest entries published more than {late} days after their decision",
            ["entry", "list", "unit", "decided on", "published at", "days"],
            [
                [e["entry_id"], e["list"], e["unit"], e["decided_on"], e["published_at"], e["days"]]
                for e in delays["late"]
            ],
            href="/v1/stats/publication",
            empty=f"none later than {late} days",
        ),
    ]


async def panels(rt: Runtime) -> Sequence[Panel]:
    tracker: ListSizes = rt.extras.setdefault("dashboard_list_sizes", ListSizes())
    sizes = await tracker.read(rt.db)
    changes = await store.recent_changes(rt.db, RECENT)
    mix: dict[str, dict[str, int]] = {}
    for r in await store.recent_change_mix(rt.db, MIX_OF):
        mix.setdefault(r["list"], {})[SHORT.get(r["type"], r["type"])] = int(r["n"])
    return [
        KeyValues(
            "feed",
            "Change feed",
            [
                Stat("last_seq", "last seq", tracker.seq, href=f"/v1/changes?after={max(0, (tracker.seq or 0) - 100)}"),
                Stat("active", "entries on a list", sum(sizes.values())),
            ],
            note="list sizes are exact as of this seq",
        ),
        BarChart(
            "lists",
            "List sizes (current view)",
            [Bar(name, name.replace("_", " "), (n,), href=f"/v1/lists/{name}") for name, n in sizes.items()],
        ),
        BarChart(
            "mix",
            f"The last {MIX_OF} changes by list",
            [
                Bar(name, name.replace("_", " "), tuple(mix[name].get(t, 0) for t in SHORT.values()))
                for name in domain.LISTS
                if name in mix
            ],
            series=tuple(SHORT.values()),
            empty="no change published yet",
        ),
        Table(
            "changes",
            "Latest changes",
            ["seq", "change", "list", "entry", "subject", "unit", "reason", "public", "at"],
            [
                [
                    r["seq"],
                    SHORT.get(r["type"], r["type"]),
                    r["list"],
                    r["entry_id"],
                    Link(r["subject_id"], f"/v1/subjects/{r['subject_id']}"),
                    r["unit"],
                    r["reason"],
                    "yes" if r["public_sent"] else "no",
                    r["at"],
                ]
                for r in changes
            ],
            href="/v1/changes",
        ),
        *_delay_panels(await _delays(rt)),
        Table(
            "downloads",
            "Latest exports and snapshots downloaded",
            ["at", "who", "what", "list", "format", "public", "seq", "bytes", "outcome"],
            [
                [
                    d["at"],
                    d["principal"],
                    d["kind"],
                    d["list"],
                    d["format"],
                    d["public"],
                    d["snapshot_seq"],
                    d["bytes"],
                    d["outcome"],
                ]
                for d in await directory.latest(rt.db, None, None, None, RECENT)
            ],
            href="/v1/downloads",
            empty="nothing downloaded yet",
        ),
    ]
