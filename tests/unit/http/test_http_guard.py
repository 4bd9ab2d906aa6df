"""Hostile input over HTTP (contracts.md, Integrity rules): control characters in a path or query
answer 400 problems and bodies over 512 KiB answer 413, before any route or authentication."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from credit_common.http.app import create_http_app
from credit_common.http.guard import MAX_BODY_BYTES
from credit_common.http.health import HealthChecks
from credit_common.http.problems import PROBLEM_JSON
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry

from tests.support.tokens import auth_headers


def _app() -> FastAPI:
    app = create_http_app("designation", "Designation", "test", HealthChecks(), CollectorRegistry())

    @app.get("/v1/subjects/{subject_id}")
    async def subject(subject_id: str, measure: str | None = None) -> dict[str, str | None]:
        return {"id": subject_id, "measure": measure}

    @app.post("/v1/requests")
    async def submit(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=auth_headers()) as c:
        yield c


@pytest.mark.parametrize(
    "url",
    [
        "/v1/subjects/%00",
        "/v1/subjects/a%0Db",
        "/v1/subjects/x?measure=%00",
        "/v1/subjects/x?measure=a%1Fb",
        "/v1/subjects/x?measure=%FF%FE",  # not UTF-8
        "/v1/subjects/%C0%80",  # an overlong NUL
    ],
)
async def test_a_control_character_in_the_path_or_query_is_a_400_problem(client: httpx.AsyncClient, url: str) -> None:
    r = await client.get(url)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == PROBLEM_JSON
    assert r.json()["errors"][0]["code"] == "schema_violation"


async def test_ordinary_unicode_in_a_query_still_reaches_the_route(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/subjects/x", params={"measure": "限制高消费 & more"})
    assert r.status_code == 200
    assert r.json()["measure"] == "限制高消费 & more"


async def test_a_body_over_512_kib_is_a_413_before_the_route_reads_it(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/requests", content=b"x" * (MAX_BODY_BYTES + 1))
    assert r.status_code == 413
    assert r.headers["content-type"] == PROBLEM_JSON
    assert r.json()["errors"][0]["code"] == "too_large"
    ok = await client.post("/v1/requests", content=b"x" * MAX_BODY_BYTES)
    assert ok.json() == {"bytes": MAX_BODY_BYTES}


async def test_a_chunked_body_is_counted_as_it_arrives(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(9):
            yield b"y" * (64 * 1024)

    r = await client.post("/v1/requests", content=chunks())  # no Content-Length: chunked
    assert r.status_code == 413
    assert r.json()["errors"][0]["code"] == "too_large"
