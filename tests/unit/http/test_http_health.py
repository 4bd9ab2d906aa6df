"""Readiness asks every dependency within its timeout; liveness always answers."""

from __future__ import annotations

import asyncio

import httpx
from credit_common.http.app import create_http_app
from credit_common.http.health import HealthChecks
from prometheus_client import CollectorRegistry


async def _ok() -> None:
    return None


async def _refused() -> None:
    raise ConnectionRefusedError("connection refused on 127.0.0.1:15432")


async def _hangs() -> None:
    await asyncio.sleep(10)


async def test_ready_when_every_check_passes() -> None:
    registry = CollectorRegistry()
    checks = HealthChecks(registry)
    checks.add("kafka", _ok)
    checks.add("postgres", _ok)

    status, body = await checks.ready()

    assert status == 200
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"kafka", "postgres"}
    assert all(check["ok"] and check["ms"] >= 0 for check in body["checks"].values())
    assert registry.get_sample_value("credit_up", {"dependency": "postgres"}) == 1


async def test_not_ready_when_a_check_fails() -> None:
    registry = CollectorRegistry()
    checks = HealthChecks(registry)
    checks.add("kafka", _ok)
    checks.add("postgres", _refused)

    status, body = await checks.ready()

    assert status == 503
    assert body["status"] == "not_ready"
    assert body["checks"]["kafka"]["ok"] is True
    assert body["checks"]["postgres"]["ok"] is False
    assert "connection refused" in body["checks"]["postgres"]["error"]
    assert registry.get_sample_value("credit_up", {"dependency": "kafka"}) == 1
    assert registry.get_sample_value("credit_up", {"dependency": "postgres"}) == 0


async def test_not_ready_when_a_check_times_out_and_checks_run_concurrently() -> None:
    checks = HealthChecks()
    for name in ("kafka", "postgres", "reference"):
        checks.add(name, _hangs, timeout=0.2)

    started = asyncio.get_running_loop().time()
    status, body = await checks.ready()
    elapsed = asyncio.get_running_loop().time() - started

    assert status == 503
    assert body["checks"]["kafka"]["ok"] is False
    assert body["checks"]["kafka"]["error"] == "timed out after 0.2 s"
    assert elapsed < 0.55  # concurrent: one timeout, not three in a row


async def test_probes_over_http() -> None:
    registry = CollectorRegistry()
    checks = HealthChecks()
    checks.add("kafka", _ok)
    app = create_http_app("sharing", "Sharing", "test", checks, registry)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/health/live")).json() == {"status": "live"}
        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["kafka"]["ok"] is True

        checks.add("postgres", _refused)
        not_ready = await client.get("/health/ready")
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"]["postgres"]["ok"] is False
        assert (await client.get("/health/live")).status_code == 200
    # The app bound the checks to its registry.
    assert registry.get_sample_value("credit_up", {"dependency": "postgres"}) == 0
