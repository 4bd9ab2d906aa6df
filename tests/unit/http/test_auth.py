"""Who may call what (contracts.md, Security, HTTP), through the app factory every service uses:
401 without a valid token, 403 without the right, open paths open, a unit's own resources only,
and the browser's way in (`?token=` once, then the cookie)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from credit_common.http.app import create_http_app
from credit_common.http.auth import Access, require_owner, rule_for
from credit_common.http.health import HealthChecks
from credit_common.security import tokens
from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry

from tests.support.tokens import auth_headers


def app() -> FastAPI:
    api = create_http_app("designation", "Designation", "test", HealthChecks(), CollectorRegistry())
    owners = {"r-1": "110108-SAT", "r-2": "110000-SAT"}

    @api.get("/v1/requests/{request_id}")
    async def get_request(request_id: str, request: Request) -> dict[str, str]:
        require_owner(request, owners[request_id])
        return {"id": request_id}

    @api.post("/v1/requests")
    async def submit() -> dict[str, str]:
        return {"status": "pending"}

    @api.get("/v1/public/subjects/{subject_id}")
    async def public(subject_id: str) -> dict[str, str]:
        return {"subject": subject_id}

    @api.get("/v1/stats")
    async def stats() -> dict[str, int]:
        return {"n": 1}

    @api.get("/")
    async def dashboard() -> dict[str, str]:
        return {"page": "dashboard"}

    return api


def client(**kw: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://127.0.0.1:8101", **kw)  # type: ignore[arg-type]


async def test_open_paths_need_no_token() -> None:
    async with client() as http:
        assert (await http.get("/health/live")).status_code == 200
        assert (await http.get("/health/ready")).status_code == 200
        assert (await http.get("/v1/public/subjects/x")).status_code == 200
        assert (await http.post("/v1/requests")).status_code == 200
        # Even a bad token is not looked at there.
        assert (await http.get("/v1/public/subjects/x", headers={"Authorization": "Bearer junk"})).status_code == 200


@pytest.mark.parametrize("path", ["/v1/stats", "/", "/metrics", "/docs", "/openapi.json", "/v1/requests/r-1", "/nope"])
async def test_without_a_token_401_problem(path: str) -> None:
    async with client() as http:
        answer = await http.get(path)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert answer.json()["status"] == 401


async def test_a_bad_or_expired_token_is_401(credentials_dir: Path) -> None:
    expired = tokens.issue("operator:local", "internal ops", timedelta(seconds=-120), credentials_dir)
    other = tokens.issue("operator:local", "internal ops", timedelta(hours=1), credentials_dir.parent / "other")
    async with client() as http:
        for token in ("junk", expired, other):
            answer = await http.get("/v1/stats", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 401, token
            assert 'error="invalid_token"' in answer.headers["www-authenticate"]
        assert (await http.get("/v1/stats", headers={"Authorization": "Basic abc"})).status_code == 401


async def test_scopes_decide() -> None:
    async with client() as http:
        ops, internal = auth_headers(scopes="ops"), auth_headers(scopes="internal")
        assert (await http.get("/v1/stats", headers=internal)).status_code == 200
        assert (await http.get("/", headers=ops)).status_code == 200
        assert (await http.get("/metrics", headers=ops)).status_code == 200
        assert (await http.get("/openapi.json", headers=ops)).status_code == 200
        forbidden = await http.get("/v1/stats", headers=ops)
        assert forbidden.status_code == 403
        assert forbidden.headers["content-type"] == "application/problem+json"
        assert 'error="insufficient_scope"' in forbidden.headers["www-authenticate"]
        assert (await http.get("/metrics", headers=internal)).status_code == 403
        assert (await http.get("/", headers=auth_headers("subscriber:local", ""))).status_code == 403


async def test_a_unit_reads_its_own_requests_only() -> None:
    unit = auth_headers("unit:110108-SAT", "")
    async with client() as http:
        assert (await http.get("/v1/requests/r-1", headers=unit)).status_code == 200
        other = await http.get("/v1/requests/r-2", headers=unit)
        assert other.status_code == 403
        assert other.headers["content-type"] == "application/problem+json"
        assert (await http.get("/v1/stats", headers=unit)).status_code == 403  # nothing else
        assert (await http.get("/", headers=unit)).status_code == 403
        assert (await http.get("/v1/requests/r-2", headers=auth_headers())).status_code == 200  # internal: all
        assert (await http.get("/v1/requests/r-1", headers=auth_headers("portal", ""))).status_code == 403


async def test_a_browser_brings_the_token_once_then_the_cookie() -> None:
    token = tokens.issue("operator:local", "internal ops", timedelta(hours=1))
    async with client() as http:
        answer = await http.get("/", params={"token": token, "refresh": "0"})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/?refresh=0"
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("credit_token=")
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/" in cookie
        assert (await http.get("/")).status_code == 200  # the client kept the cookie
        assert (await http.get("/", params={"token": "junk"})).status_code == 401
    async with client(cookies={"credit_token": "junk"}) as http:
        assert (await http.get("/")).status_code == 401


def test_the_table() -> None:
    assert rule_for("GET", "/v1/cases/typical").access is Access.OPEN
    assert rule_for("GET", "/v1/cases/{case_id}").access is Access.INTERNAL
    assert rule_for("POST", "/v1/requests").access is Access.OPEN
    assert rule_for("GET", "/v1/requests").access is Access.INTERNAL
    assert rule_for("GET", "/v1/public").access is Access.INTERNAL
    assert rule_for("GET", "/v1/public/lists/red").access is Access.OPEN
    assert rule_for("GET", "/docs/asyncapi.json").access is Access.OPS
    assert rule_for("GET", "/docs/oauth2-redirect").access is Access.OPS
    assert rule_for("GET", "/v1/units/{code}/inbox").units
    assert not rule_for("GET", "/v1/objections/{objection_id}").units
