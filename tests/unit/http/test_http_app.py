"""The shared FastAPI app: docs, metrics, request timing and the AsyncAPI hook."""

from __future__ import annotations

import httpx
from credit_common.http.app import UNMATCHED_ROUTE, create_http_app, mount_asyncapi
from credit_common.http.health import HealthChecks
from prometheus_client import CollectorRegistry

from tests.support.tokens import auth_headers


def _client(registry: CollectorRegistry) -> httpx.AsyncClient:
    app = create_http_app("objection", "Objection", "Objections and restorations.", HealthChecks(), registry)

    @app.get("/v1/objections/{objection_id}")
    async def objection(objection_id: str) -> dict[str, str]:
        return {"objection_id": objection_id}

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    mount_asyncapi(app, "<html><body>asyncapi</body></html>", {"asyncapi": "3.0.0"})
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", headers=auth_headers())


async def test_metrics_endpoint_serves_the_credit_families() -> None:
    async with _client(CollectorRegistry()) as client:
        response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    for family in (
        "credit_messages_consumed_total",
        "credit_messages_published_total",
        "credit_rejections_total",
        "credit_processing_seconds",
        "credit_consumer_lag",
        "credit_outbox_pending",
        "credit_up",
        "credit_http_request_seconds",
    ):
        assert f"# TYPE {family} " in response.text, family


async def test_requests_are_timed_by_route_template() -> None:
    registry = CollectorRegistry()
    async with _client(registry) as client:
        assert (await client.get("/v1/objections/o-1")).status_code == 200
        assert (await client.get("/v1/objections/o-2")).status_code == 200
        assert (await client.get("/no/such/path")).status_code == 404
        assert (await client.get("/v1/boom")).status_code == 500

    def count(route: str, status: str) -> float | None:
        labels = {"route": route, "method": "GET", "status": status}
        return registry.get_sample_value("credit_http_request_seconds_count", labels)

    assert count("/v1/objections/{objection_id}", "200") == 2
    assert count(UNMATCHED_ROUTE, "404") == 1
    assert count("/v1/boom", "500") == 1


async def test_openapi_and_asyncapi_documents_are_served() -> None:
    async with _client(CollectorRegistry()) as client:
        assert "swagger-ui" in (await client.get("/docs")).text
        document = (await client.get("/openapi.json")).json()
        html = await client.get("/docs/asyncapi")
        raw = await client.get("/docs/asyncapi.json")

    assert document["info"]["title"] == "Objection"
    assert "/v1/objections/{objection_id}" in document["paths"]
    assert "/docs/asyncapi" not in document["paths"]
    assert html.headers["content-type"].startswith("text/html")
    assert "asyncapi" in html.text
    assert raw.json() == {"asyncapi": "3.0.0"}
