"""The operator dashboard every service serves: `GET /` (one HTML page, rendered on the server with
inline SVG charts, no external script or style, refreshing itself) and `GET /dashboard.json` (the
same snapshot as JSON).

The operations part is the same on every service and comes from the runtime: messages in and out
per second (with their last minutes as sparklines), consumer lag per partition, rejections by
error code, dead letters, processing and event latency percentiles, outbox rows pending, each
dependency's health, the timers and the uptime. The domain part is the service's own, through a
hook on its definition.

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

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse

from credit_common.http.responses import JsonResponse
from credit_common.settings import SERVICE_PORTS
from credit_common.telemetry import sampler as smp

if TYPE_CHECKING:
    from credit_common.service import Runtime

log = logging.getLogger(__name__)

T = TypeVar("T")
Number = int | float | Decimal  # Decimal: what PostgreSQL numeric arrives as
HOOK_TIMEOUT_S = 10.0
RATE_WINDOW_S = 10.0  # "per second" on the page: over about the last ten seconds
LATENCY_WINDOW_S = 300.0  # percentiles over about the last five minutes
COST_FACTOR = 50.0  # a cached query's answer is kept at least 50 times as long as it took


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
DashboardHook = Callable[["Runtime"], Awaitable[Sequence[Panel]]]


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


class _Metrics:
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


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _seconds(iso: str | None) -> str | None:
    """An RFC 3339 time to the second (the timers keep microseconds)."""
    try:
        return datetime.fromisoformat(iso).isoformat(timespec="seconds") if iso else None
    except ValueError:
        return iso


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


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


def panel_doc(panel: Panel, m: _Metrics) -> dict[str, Any]:
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


class Dashboard:
    """One service's dashboard: the sampler, the snapshot both endpoints serve, the query cache."""

    def __init__(self, rt: Runtime) -> None:
        s = rt.settings
        self.rt = rt
        self.sampler = smp.MetricsSampler(rt.registry, s.credit_dashboard_sample_s, s.credit_dashboard_window_s)
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self._snapshot: dict[str, Any] | None = None
        self._snapshot_at = 0.0
        self._lock = asyncio.Lock()
        self._cache: dict[str, tuple[Cached[Any], float]] = {}
        self._cache_locks: dict[str, asyncio.Lock] = {}

    def start(self) -> None:
        self.sampler.sample()
        self.sampler.start()

    async def stop(self) -> None:
        await self.sampler.stop()

    async def cached(self, key: str, compute: Callable[[], Awaitable[T]], min_ttl: float = 5.0) -> Cached[T]:
        """`compute()`'s last answer while it is fresh: younger than `min_ttl` and than 50 times
        what it took. Concurrent callers of a stale key wait for one computation."""
        lock = self._cache_locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit = self._cache.get(key)
            if hit is not None and time.monotonic() < hit[1]:
                return hit[0]
            started = time.monotonic()
            value = await compute()
            took = time.monotonic() - started
            result = Cached(value, datetime.now(UTC), took)
            self._cache[key] = (result, time.monotonic() + max(min_ttl, took * COST_FACTOR))
            return result

    async def snapshot(self) -> dict[str, Any]:
        """The snapshot every request within `credit_dashboard_cache_s` shares (page and JSON alike)."""
        async with self._lock:
            ttl = self.rt.settings.credit_dashboard_cache_s
            if self._snapshot is None or time.monotonic() - self._snapshot_at >= ttl:
                self._snapshot = await self._build()
                self._snapshot_at = time.monotonic()
            return self._snapshot

    # ------------------------------------------------------------------ building

    async def _build(self) -> dict[str, Any]:
        rt = self.rt
        m = _Metrics()
        now = smp.read_sample(rt.registry)
        sampler = self.sampler
        uptime = max(0, int(now.at - rt.started_at))
        lag_groups, lag_total = self._lag(now, m)

        def rate(family: str, key: str | None = None) -> float | None:
            return _round(sampler.rate(family, key, RATE_WINDOW_S, last=now))

        summary = [
            m.stat("rate.consumed", "messages in", rate(smp.CONSUMED), "/s"),
            m.stat("rate.published", "messages out", rate(smp.PUBLISHED), "/s"),
            m.stat("lag.total", "consumer lag", lag_total, "records"),
            m.stat("total.rejections", "rejections", int(now.total(smp.REJECTIONS))),
            m.stat("total.deadletters", "dead letters", int(now.total(smp.DEADLETTERS))),
            m.stat("outbox.pending", "outbox pending", await self._outbox_pending(), "rows"),
            m.stat("total.consumed", "consumed since start", int(now.total(smp.CONSUMED))),
            m.stat("total.published", "published since start", int(now.total(smp.PUBLISHED))),
            m.stat("uptime_s", "uptime", uptime, "s", hint=_duration(uptime)),
        ]
        window = sampler.window_s

        def points(series: list[tuple[float, float]]) -> list[list[float]]:
            return [[round(t, 1), round(v, 3)] for t, v in series if now.at - t <= window]

        series = {
            "rate.consumed": points(sampler.rate_series(smp.CONSUMED)),
            "rate.published": points(sampler.rate_series(smp.PUBLISHED)),
            "lag.total": points(sampler.value_series(lambda s: sum(s.lag.values()))),
            "total.rejections": points(sampler.rate_series(smp.REJECTIONS)),
            "total.deadletters": points(sampler.rate_series(smp.DEADLETTERS)),
        }
        topics = sorted(set(now.counters.get(smp.CONSUMED, {})) | set(now.counters.get(smp.PUBLISHED, {})))
        topic_rows = []
        for topic in topics:
            consumed = now.counters.get(smp.CONSUMED, {}).get(topic)
            published = now.counters.get(smp.PUBLISHED, {}).get(topic)
            topic_rows.append(
                {
                    "topic": topic,
                    "in_rate": m.stat(f"topic.{topic}.in_rate", "in", rate(smp.CONSUMED, topic), "/s"),
                    "in_total": m.stat(f"topic.{topic}.in_total", "in total", int(consumed or 0)),
                    "out_rate": m.stat(f"topic.{topic}.out_rate", "out", rate(smp.PUBLISHED, topic), "/s"),
                    "out_total": m.stat(f"topic.{topic}.out_total", "out total", int(published or 0)),
                }
            )
        rejections = [
            m.stat(f"rejections.{code}", code, int(n))
            for code, n in sorted(now.counters.get(smp.REJECTIONS, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        deadletters = [
            m.stat(f"deadletters.{topic}", topic, int(n))
            for topic, n in sorted(now.counters.get(smp.DEADLETTERS, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        # How the consumers applied their batches (see credit_common.messaging.consumer): a
        # rising `contended` share means instances contend for the same rows.
        batches = [
            m.stat(f"batches.{path}", path, int(n))
            for path, n in sorted(now.counters.get(smp.BATCHES, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        return {
            "service": rt.name,
            "title": rt.definition.title,
            "instance": self.instance,
            "generated_at": datetime.fromtimestamp(now.at, UTC).isoformat(),
            "started_at": datetime.fromtimestamp(rt.started_at, UTC).isoformat(),
            "window_s": window,
            "rate_window_s": RATE_WINDOW_S,
            "latency_window_s": LATENCY_WINDOW_S,
            "summary": summary,
            "series": series,
            "topics": topic_rows,
            "lag": lag_groups,
            "rejections": rejections,
            "deadletters": deadletters,
            "batches": batches,
            "latency": self._latency(now, m),
            "health": await self._health(m),
            "timers": self._timers(m),
            "panels": await self._panels(m),
            "metrics": m.values,
        }

    def _lag(self, now: smp.Sample, m: _Metrics) -> tuple[list[dict[str, Any]], int]:
        """Per consumer group and topic, the lag of each partition this instance holds."""
        groups: list[dict[str, Any]] = []
        total = 0
        for c in self.rt.consumers:
            consumer = getattr(c, "consumer", None)
            assigned = sorted(
                (tp.topic, tp.partition) for tp in (consumer.assignment() if consumer is not None else ())
            )
            by_topic: dict[str, list[dict[str, Any]]] = {topic: [] for topic in c.topics}
            for topic, partition in assigned:
                value = now.lag.get((topic, partition))
                lag = None if value is None else int(value)
                total += lag or 0
                key = f"lag.{c.group_id}.{topic}.{partition}"
                by_topic.setdefault(topic, []).append(m.stat(key, str(partition), lag, partition=partition))
            for topic, partitions in by_topic.items():
                known = [p["value"] for p in partitions if p["value"] is not None]
                groups.append(
                    {
                        "group": c.group_id,
                        "topic": topic,
                        "total": m.stat(f"lag.{c.group_id}.{topic}", "behind", sum(known) if known else None),
                        "partitions": partitions,
                    }
                )
        return groups, total

    def _latency(self, now: smp.Sample, m: _Metrics) -> list[dict[str, Any]]:
        rows = []
        names = {smp.PROCESSING: "processing", smp.EVENT_LATENCY: "event"}
        for family, name in names.items():
            per_topic = self.sampler.window_histograms(family, LATENCY_WINDOW_S, last=now)
            if not per_topic:
                continue
            ordered = [("all", smp.merge_buckets(per_topic.values())), *sorted(per_topic.items())]
            for topic, buckets in ordered:
                count = int(buckets[-1][1]) if buckets else 0
                finite = [upper for upper, _ in buckets if upper != float("inf")]
                top = finite[-1] if finite else None
                p50, p95, p99 = smp.quantiles(buckets)
                base = f"latency.{name}.{topic}"
                rows.append(
                    {
                        "family": name,
                        "topic": topic,
                        "count": m.stat(f"{base}.count", "count", count),
                        "quantiles": [
                            m.stat(f"{base}.{q}", q, _ms(v), "ms", at_least=v is not None and v == top)
                            for q, v in (("p50", p50), ("p95", p95), ("p99", p99))
                        ],
                    }
                )
        return rows

    async def _health(self, m: _Metrics) -> list[dict[str, Any]]:
        try:
            report = await self.rt.health.ready()
        except Exception as exc:  # pragma: no cover - ready() catches each check's failure itself
            return [{"name": "health", "ok": False, "ms": None, "error": str(exc), "up": m.stat("health", "up", 0)}]
        out = []
        for name, check in report.body.get("checks", {}).items():
            ok = bool(check.get("ok"))
            out.append(
                {
                    "name": name,
                    "ok": ok,
                    "ms": check.get("ms"),
                    "error": check.get("error"),
                    "up": m.stat(f"health.{name}", name, 1 if ok else 0),
                }
            )
        return out

    def _timers(self, m: _Metrics) -> list[dict[str, Any]]:
        rows = []
        for spec in self.rt.definition.timers:
            state = self.rt.timer_state.get(spec.name, {})
            rows.append(
                {
                    "name": spec.name,
                    "interval_s": spec.interval_s,
                    "runs": m.stat(f"timer.{spec.name}.runs", "runs", int(state.get("runs", 0))),
                    "last_run": _seconds(state.get("last_run")),
                    "last_error": state.get("last_error"),
                }
            )
        return rows

    async def _outbox_pending(self) -> int | None:
        if self.rt.relay is None:
            return None
        try:
            return await asyncio.wait_for(self.rt.relay.pending(), 2.0)
        except Exception:
            return None

    async def _panels(self, m: _Metrics) -> list[dict[str, Any]]:
        hook = self.rt.definition.dashboard
        if hook is None:
            return []
        own = _Metrics()  # kept only if every panel renders
        try:
            async with asyncio.timeout(HOOK_TIMEOUT_S):
                panels = await hook(self.rt)
            docs = [panel_doc(p, own) for p in panels]
        except Exception as exc:
            log.exception("dashboard panels of %s failed", self.rt.name)
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return [{"kind": "error", "key": "error", "title": "Domain picture unavailable", "error": error}]
        m.values.update(own.values)
        return docs


# --------------------------------------------------------------------------------------- links


def service_links(request: Request, links: dict[str, str], current: str) -> dict[str, str]:
    """Base URL (ending in /) of every service's dashboard: configured, else this host at the
    service's default port; this service's own is `/`."""
    host = request.url.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    out = {}
    for name, port in SERVICE_PORTS.items():
        if name == current:
            out[name] = "/"
        elif name in links:
            out[name] = links[name].rstrip("/") + "/"
        else:
            out[name] = f"{request.url.scheme}://{host}:{port}/"
    return out


Refresh = Annotated[int | None, Query(ge=0, le=3600, description="seconds between reloads (0: never)")]


def mount_dashboard(app: FastAPI, dashboard: Dashboard) -> None:
    """`GET /` (the page) and `GET /dashboard.json` (its numbers) on the service's app."""
    from credit_common.http import dashboard_page

    settings = dashboard.rt.settings

    @app.get("/", response_class=HTMLResponse, tags=["operations"], summary="Operator dashboard (HTML)")
    async def page(request: Request, refresh: Refresh = None) -> HTMLResponse:
        snap = await dashboard.snapshot()
        links = service_links(request, settings.credit_dashboard_links, dashboard.rt.name)
        every = settings.credit_dashboard_refresh_s if refresh is None else refresh
        body = dashboard_page.render(snap, links, every)
        return HTMLResponse(body, headers=dashboard_page.HEADERS)

    @app.get("/dashboard.json", response_class=JsonResponse, tags=["operations"], summary="Operator dashboard (JSON)")
    async def page_json(request: Request) -> JsonResponse:
        snap = await dashboard.snapshot()
        links = service_links(request, settings.credit_dashboard_links, dashboard.rt.name)
        return JsonResponse({**snap, "links": links}, headers={"Cache-Control": "no-store"})


__all__ = [
    "Bar",
    "BarChart",
    "Cached",
    "Dashboard",
    "DashboardHook",
    "KeyValues",
    "Link",
    "Panel",
    "Stat",
    "Table",
    "mount_dashboard",
]
