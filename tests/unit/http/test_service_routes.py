"""Every route of every service against the authorisation table (contracts.md, Security, HTTP): a
route is open only if the contract opens it, and every other one answers 401 without a token and
403 to a token without the right, so a new route cannot be forgotten. The five apps are built as
the services build them, without starting them (no broker, no database)."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Iterator

import httpx
import pytest
from credit_common.http.auth import OPEN_ROUTES, Access, AuthMiddleware, rule_for
from credit_common.http.guard import HostileInputMiddleware
from credit_common.service import build_app, served
from credit_common.settings import SERVICE_PORTS, Settings
from fastapi import FastAPI
from starlette.routing import BaseRoute, Mount, Route

from tests.support.tokens import auth_headers


def service_app(name: str) -> FastAPI:
    module = importlib.import_module(f"services.{name}.app")
    return build_app(module.definition, Settings())


def routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path template) of every route, documented or not (/docs, /docs/asyncapi, ...)."""
    yield from _walk(app.routes, "")


def _walk(found: Iterable[BaseRoute], prefix: str) -> Iterator[tuple[str, str]]:
    for route in found:
        included = getattr(route, "original_router", None)  # a router included whole (FastAPI)
        if included is not None:
            yield from _walk(included.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]
            continue
        if isinstance(route, Mount) and route.path == "/docs/assets":  # static files: read like a route
            yield "GET", route.path + "/{path}"
            continue
        assert isinstance(route, Route), f"{route!r}: a mount or a websocket the table does not know"
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                yield method, prefix + route.path


def is_open(method: str, path: str) -> bool:
    return (method, path) in OPEN_ROUTES or path.startswith("/v1/public/")


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


@pytest.mark.parametrize("name", SERVICE_PORTS)
async def test_every_route_is_open_as_the_contract_says_or_protected(name: str) -> None:
    app = service_app(name)
    found = list(routes(app))
    assert ("GET", "/metrics") in found
    assert ("GET", "/") in found
    assert ("GET", "/docs/asyncapi") in found
    unit = auth_headers("unit:110108-SAT", "")
    nobody = auth_headers("subscriber:local", "")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served(app)), base_url="http://t") as http:
        for method, path in found:
            rule = rule_for(method, path)
            assert (rule.access is Access.OPEN) == is_open(method, path), f"{name}: {method} {path}: {rule}"
            if rule.access is Access.OPEN:
                continue
            url = concrete(path)
            answer = await http.request(method, url)
            assert answer.status_code == 401, f"{name}: {method} {path} without a token: {answer.status_code}"
            assert answer.headers["content-type"] == "application/problem+json"
            assert (await http.request(method, url, headers=nobody)).status_code == 403, f"{name}: {method} {path}"
            if not rule.units:
                assert (await http.request(method, url, headers=unit)).status_code == 403, f"{name}: {method} {path}"


def test_the_routes_a_unit_may_reach_are_its_requests_designations_and_inbox() -> None:
    reachable = {
        (name, method, path)
        for name in SERVICE_PORTS
        for method, path in routes(service_app(name))
        if rule_for(method, path).units
    }
    assert reachable == {
        ("designation", "GET", "/v1/requests/{request_id}"),
        ("designation", "GET", "/v1/designations/{designation_id}"),
        ("objection", "GET", "/v1/units/{code}/inbox"),
    }


def test_the_open_routes_are_the_contracts() -> None:
    opened = {
        (method, path)
        for name in SERVICE_PORTS
        for method, path in routes(service_app(name))
        if rule_for(method, path).access is Access.OPEN and not path.startswith("/v1/public/")
    }
    assert opened == OPEN_ROUTES


def test_the_fast_paths_stand_behind_the_check() -> None:
    """Sharing answers its hot lookups in front of FastAPI: the hostile-input guard, then the
    check, stand in front of them."""
    front = served(service_app("sharing"))
    assert isinstance(front, HostileInputMiddleware)
    assert isinstance(front.app, AuthMiddleware)


@pytest.mark.parametrize("name", SERVICE_PORTS)
def test_every_integer_parameter_is_bounded(name: str) -> None:
    """An integer the database cannot hold is refused as input, not a 500 from PostgreSQL
    (schemathesis found `GET /v1/changes?after=24974348750039359488`)."""
    spec = service_app(name).openapi()
    unbounded = [
        f"{method.upper()} {path} {param['name']}"
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        for param in op.get("parameters", [])
        if param.get("schema", {}).get("type") == "integer" and "maximum" not in param["schema"]
    ]
    assert unbounded == []


async def test_a_seq_beyond_a_bigint_is_refused_before_the_database() -> None:
    app = service_app("sharing")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for path in ("/v1/changes", "/v1/public/changes"):
            response = await client.get(path, params={"after": str(2**64)}, headers=auth_headers())
            assert 400 <= response.status_code < 500, (path, response.status_code)
