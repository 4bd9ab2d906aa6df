"""The operator dashboard every service serves: `GET /` (one HTML page, rendered on the server with
inline SVG charts, no external script or style, refreshing itself) and `GET /dashboard.json` (the
same snapshot as JSON).

The operations part is the same on every service and comes from the runtime: messages in and out
per second (with their last minutes as sparklines), consumer lag per partition, rejections by
error code, dead letters, processing and event latency percentiles, outbox rows pending, each
dependency's health, the timers and the uptime. The domain part is the service's own, through a
hook on its definition: its panels and how to write one are in `credit_common.http.panels`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from prometheus_client import CollectorRegistry

from credit_common.db.outbox import OutboxRelay
from credit_common.http.health import HealthChecks
from credit_common.http.panels import Cached, Panel, PanelMetrics, panel_doc
from credit_common.http.responses import JsonResponse
from credit_common.messaging.consumer import KafkaConsumerWrapper
from credit_common.settings import SERVICE_PORTS, Settings
from credit_common.telemetry import sampler as smp

log = logging.getLogger(__name__)

T = TypeVar("T")
HOOK_TIMEOUT_S = 10.0
RATE_WINDOW_S = 10.0  # "per second" on the page: over about the last ten seconds
LATENCY_WINDOW_S = 300.0  # percentiles over about the last five minutes
COST_FACTOR = 50.0  # a cached query's answer is kept at least 50 times as long as it took

PanelsHook = Callable[[], Awaitable[Sequence[Panel]]]


class TimerView(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def interval_s(self) -> float: ...


class DashboardRuntime(Protocol):
    """What the dashboard reads of a running service (`credit_common.service.Runtime`)."""

    @property
    def name(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def registry(self) -> CollectorRegistry: ...
    @property
    def started_at(self) -> float: ...
    @property
    def consumers(self) -> Sequence[KafkaConsumerWrapper]: ...
    @property
    def health(self) -> HealthChecks: ...
    @property
    def timers(self) -> Sequence[TimerView]: ...
    @property
    def timer_state(self) -> Mapping[str, Mapping[str, Any]]: ...
    @property
    def relay(self) -> OutboxRelay | None: ...


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


class Dashboard:
    """One service's dashboard: the sampler, the snapshot both endpoints serve, the query cache."""

    def __init__(self, rt: DashboardRuntime, panels: PanelsHook | None = None) -> None:
        s = rt.settings
        self.rt = rt
        self._panels_hook = panels
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
        m = PanelMetrics()
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
            "title": rt.title,
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

    def _lag(self, now: smp.Sample, m: PanelMetrics) -> tuple[list[dict[str, Any]], int]:
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

    def _latency(self, now: smp.Sample, m: PanelMetrics) -> list[dict[str, Any]]:
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

    async def _health(self, m: PanelMetrics) -> list[dict[str, Any]]:
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

    def _timers(self, m: PanelMetrics) -> list[dict[str, Any]]:
        rows = []
        for spec in self.rt.timers:
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

    async def _panels(self, m: PanelMetrics) -> list[dict[str, Any]]:
        hook = self._panels_hook
        if hook is None:
            return []
        own = PanelMetrics()  # kept only if every panel renders
        try:
            async with asyncio.timeout(HOOK_TIMEOUT_S):
                panels = await hook()
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


__all__ = ["Dashboard", "DashboardRuntime", "mount_dashboard", "service_links"]
