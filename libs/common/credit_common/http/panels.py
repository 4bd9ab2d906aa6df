"""The panels of a service's own picture on its operator dashboard, and how each becomes the JSON
that `/dashboard.json` serves and the page renders.

The hook (`ServiceDefinition.dashboard`)
----------------------------------------
    async def panels(rt: Runtime) -> Sequence[Panel]:
        counts = await rt.dashboard.cached("by_status", lambda: store.counts_by_status(rt.db))
        return [
            KeyValues("cases", "Cases this year", [Stat("recorded", "recorded", counts.value["n"])],
                      note=counts.note),
            BarChart("by_province", "Cases per province",
                     [Bar(p, p, (n,), href=f"/v1/cases?province={p}") for p, n in ...]),
            Table("recent", "Recent cases", ["case", "measure", "applied on"],
                  [[Link(r["case_id"], f"/v1/cases/{r['case_id']}"), r["measure"], r["applied_on"]] ...]),
        ]

    ServiceDefinition(..., dashboard=panels)

It is called once per snapshot, i.e. at most every `CREDIT_DASHBOARD_CACHE_S` seconds and only
while someone looks. A panel is one of:

- `KeyValues(key, title, stats)`: numbers, each a `Stat(key, label, value, unit="", approx=False,
  href=None)`; `approx=True` marks an estimate (e.g. from `pg_class.reltuples`).
- `BarChart(key, title, bars, series=("count",))`: one horizontal (stacked when there are several
  series) bar per `Bar(key, label, values, href=None)`, `values` one number per series; a series
  name is a key too (`objection_open`, shown as "objection open").
- `Table(key, title, columns, rows)`: recent rows; a cell is text, a number, a date or time, None,
  or a `Link(text, href, service=None)` (`service`: a path on another service's dashboard host).

Every panel also takes `note` (shown under its title, e.g. `Cached.note`) and `href` (a path on
this service, e.g. the API that answers the same question). `key`s are short, stable identifiers:
each number on the page carries `data-metric="domain.<panel>.<stat>"`,
`"domain.<panel>.<bar>.<series>"` or `"domain.<panel>.rows"` (a table's row count), and
`data-value` (its JSON value), and `/dashboard.json` has the same numbers under `metrics`.

Queries must stay cheap at any table size: use an index, a count kept incrementally, or wrap the
query in `rt.dashboard.cached(key, compute, min_ttl)`, which runs it at most once per
`max(min_ttl, 50 x its last duration)` seconds (so the dashboard's share of the database stays
around 2 %) and tells when the answer is from (`Cached.at`, `Cached.note`). A hook that raises
or takes longer than `HOOK_TIMEOUT_S` costs only its own panels (shown as an error).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Number = int | float | Decimal  # Decimal: what PostgreSQL numeric arrives as


# ---------------------------------------------------------------------------------------- panels


@dataclass(frozen=True, slots=True)
class Link:
    """A table cell that links: `href` on this service, or on `service`'s host when given."""

    text: str
    href: str
    service: str | None = None


@dataclass(frozen=True, slots=True)
class Stat:
    """One number of a `KeyValues` panel."""

    key: str
    label: str
    value: Number | None
    unit: str = ""
    approx: bool = False
    href: str | None = None


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a `BarChart`: a number per series of the chart."""

    key: str
    label: str
    values: Sequence[Number]
    href: str | None = None


@dataclass(frozen=True, slots=True)
class KeyValues:
    """A panel of labelled numbers."""

    key: str
    title: str
    stats: Sequence[Stat]
    note: str | None = None
    href: str | None = None


@dataclass(frozen=True, slots=True)
class BarChart:
    """A panel of horizontal bars, stacked when there are several series."""

    key: str
    title: str
    bars: Sequence[Bar]
    series: Sequence[str] = ("count",)
    note: str | None = None
    href: str | None = None
    empty: str = "none"


@dataclass(frozen=True, slots=True)
class Table:
    """A panel of rows (the latest changes, what is overdue, ...)."""

    key: str
    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    note: str | None = None
    href: str | None = None
    empty: str = "nothing yet"


Panel = KeyValues | BarChart | Table


@dataclass(frozen=True, slots=True)
class Cached(Generic[T]):
    """A cached answer, when it was computed and how long that took."""

    value: T
    at: datetime
    took_s: float

    @property
    def note(self) -> str:
        return f"as of {self.at.astimezone(UTC).strftime('%H:%M:%S')} UTC ({self.took_s * 1000:.0f} ms)"


# ------------------------------------------------------------------------------------ snapshot


class PanelMetrics:
    """Every number of a snapshot by its data-metric key; builds the stat documents the page shows."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def stat(self, key: str, label: str, value: Any, unit: str = "", **extra: Any) -> dict[str, Any]:
        if key in self.values:
            raise ValueError(f"dashboard metric {key!r} is given twice")
        self.values[key] = value
        return {"key": key, "label": label, "value": value, "unit": unit, **extra}


def _number(value: Any) -> int | float | None:
    """A hook's number as JSON carries it (a database may answer Decimal; a bool counts 0 or 1)."""
    if isinstance(value, bool):
        return int(value)
    if value is None or isinstance(value, int | float):
        return value
    return float(value)


def _cell(value: Any) -> Any:
    if isinstance(value, Link):
        return {"text": value.text, "href": value.href, "service": value.service}
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if value is None or isinstance(value, int | float | str):
        return value
    return str(value)


def panel_doc(panel: Panel, m: PanelMetrics) -> dict[str, Any]:
    """A panel as the snapshot carries it, its numbers registered under `domain.<panel>...`."""
    base = f"domain.{panel.key}"
    doc: dict[str, Any] = {"key": panel.key, "title": panel.title, "note": panel.note, "href": panel.href}
    if isinstance(panel, KeyValues):
        stats = [
            m.stat(f"{base}.{s.key}", s.label, _number(s.value), s.unit, approx=s.approx, href=s.href)
            for s in panel.stats
        ]
        return {"kind": "kv", **doc, "stats": stats}
    if isinstance(panel, BarChart):
        bars = []
        for b in panel.bars:
            values = [
                m.stat(
                    f"{base}.{b.key}.{name}",
                    name.replace("_", " "),
                    _number(b.values[i]) if i < len(b.values) else None,
                )
                for i, name in enumerate(panel.series)
            ]
            bars.append({"key": b.key, "label": b.label, "href": b.href, "values": values})
        return {"kind": "bars", **doc, "series": list(panel.series), "bars": bars, "empty": panel.empty}
    rows = [[_cell(c) for c in row] for row in panel.rows]
    return {
        "kind": "table",
        **doc,
        "columns": list(panel.columns),
        "rows": rows,
        "count": m.stat(f"{base}.rows", "rows", len(rows)),
        "empty": panel.empty,
    }
