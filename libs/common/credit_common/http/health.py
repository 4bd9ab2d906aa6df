"""Liveness, readiness and the Prometheus endpoint of a service.

Liveness answers while the event loop runs; readiness asks every dependency (the broker, the
database) concurrently, each within its timeout, and records the outcome in `credit_up`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry

from credit_common.telemetry.logging import get_logger
from credit_common.telemetry.metrics import render_latest, up_gauge

Check = Callable[[], Awaitable[None]]

_log = get_logger(__name__)


@dataclass(frozen=True)
class _Registered:
    check: Check
    timeout: float


class HealthReport(NamedTuple):
    """An HTTP status and the JSON body that goes with it."""

    status_code: int
    body: dict[str, Any]


class HealthChecks:
    """Named readiness checks: each an async callable that returns when the dependency answers
    and raises when it does not. With a registry, `ready()` sets `credit_up{dependency}`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry
        self._checks: dict[str, _Registered] = {}

    def add(self, name: str, check: Check, timeout: float = 2.0) -> None:
        """Register (or replace) the check of dependency `name`, e.g. `kafka`, `postgres`."""
        self._checks[name] = _Registered(check, timeout)

    def live(self) -> HealthReport:
        """Always 200: answering at all proves the event loop runs."""
        return HealthReport(200, {"status": "live"})

    async def ready(self) -> HealthReport:
        """200 with each check's time when every check passes, else 503 with the failures' errors."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[name]) for name in names))
        checks = dict(zip(names, results, strict=True))
        up = up_gauge(self.registry) if self.registry is not None else None
        for name, result in checks.items():
            if up is not None:
                up.labels(dependency=name).set(1 if result["ok"] else 0)
            if not result["ok"]:
                _log.warning("dependency_not_ready", dependency=name, error=result["error"])
        ready = all(result["ok"] for result in checks.values())
        return HealthReport(200 if ready else 503, {"status": "ready" if ready else "not_ready", "checks": checks})

    @staticmethod
    async def _run(registered: _Registered) -> dict[str, Any]:
        started = time.perf_counter()
        deadline = asyncio.timeout(registered.timeout)
        try:
            async with deadline:
                await registered.check()
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():
                error = f"timed out after {registered.timeout:g} s"
            else:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:
            return {"ok": True, "ms": _ms_since(started)}
        return {"ok": False, "ms": _ms_since(started), "error": error}


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def health_router(checks: HealthChecks, metrics_registry: CollectorRegistry) -> APIRouter:
    """`GET /health/live`, `GET /health/ready` and `GET /metrics` (Prometheus text 0.0.4) for
    `metrics_registry`, which also receives `credit_up` unless `checks` has a registry already."""
    if checks.registry is None:
        checks.registry = metrics_registry
    router = APIRouter(tags=["operations"])

    @router.get("/health/live", summary="Liveness: the process answers")
    async def live() -> JSONResponse:
        report = checks.live()
        return JSONResponse(report.body, status_code=report.status_code)

    @router.get(
        "/health/ready",
        summary="Readiness: every dependency answers",
        responses={503: {"description": "A dependency failed or timed out"}},
    )
    async def ready() -> JSONResponse:
        report = await checks.ready()
        return JSONResponse(report.body, status_code=report.status_code, headers={"Cache-Control": "no-store"})

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        body, content_type = render_latest(metrics_registry)
        return Response(body, media_type=content_type)

    return router
