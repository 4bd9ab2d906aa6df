"""Every HTTP error is an RFC 9457 problem document."""

from __future__ import annotations

import httpx
import pytest
from credit_common.http.app import create_http_app
from credit_common.http.health import HealthChecks
from credit_common.http.problems import PROBLEM_JSON, Problem
from credit_common.telemetry.logging import configure_logging
from fastapi import FastAPI, HTTPException
from prometheus_client import CollectorRegistry

from tests.support.tokens import auth_headers


def _app() -> FastAPI:
    app = create_http_app("designation", "Designation", "test", HealthChecks(), CollectorRegistry())

    @app.get("/v1/designations/{designation_id}")
    async def designation(designation_id: str) -> dict[str, str]:
        raise Problem(
            404,
            title="Unknown designation",
            detail=f"No designation {designation_id}.",
            type="https://credit.example/problems/unknown-designation",
            designation_id=designation_id,
        )

    @app.get("/v1/changes")
    async def changes(after: int, limit: int = 100) -> dict[str, int]:
        return {"after": after, "limit": limit}

    @app.get("/v1/forbidden")
    async def forbidden() -> None:
        raise HTTPException(403, detail="Not your unit.")

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2 in a stack frame")

    @app.get("/v1/subjects/{subject_id}")
    async def subject(subject_id: str) -> None:
        raise OverflowError("date value out of range")

    return app


async def _get(path: str, method: str = "GET", **params: str) -> httpx.Response:
    # raise_app_exceptions stays on: an exception escaping the app fails the test.
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=auth_headers()) as client:
        return await client.request(method, path, params=params)


async def test_problem_becomes_a_problem_document() -> None:
    response = await _get("/v1/designations/d-1")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json() == {
        "type": "https://credit.example/problems/unknown-designation",
        "title": "Unknown designation",
        "status": 404,
        "detail": "No designation d-1.",
        "designation_id": "d-1",
    }


async def test_unknown_route_is_a_404_problem() -> None:
    response = await _get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json() == {"type": "about:blank", "title": "Not Found", "status": 404}


async def test_http_exception_keeps_its_detail() -> None:
    response = await _get("/v1/forbidden")
    assert response.status_code == 403
    assert response.json()["detail"] == "Not your unit."
    assert response.json()["title"] == "Forbidden"


async def test_wrong_method_keeps_the_allow_header() -> None:
    response = await _get("/v1/changes", method="POST")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "GET" in response.headers["allow"]


async def test_validation_errors_are_listed() -> None:
    response = await _get("/v1/changes", limit="many")
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == 422
    assert body["title"] == "Request validation failed"
    assert {(error["field"], error["code"]) for error in body["errors"]} == {
        ("query.after", "missing"),
        ("query.limit", "int_parsing"),
    }
    assert all(error["message"] for error in body["errors"])


async def test_unhandled_error_is_a_500_problem_without_the_traceback() -> None:
    response = await _get("/v1/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == 500
    assert body["title"] == "Internal Server Error"
    for leaked in ("Traceback", "RuntimeError", "hunter2", "stack frame"):
        assert leaked not in response.text


async def test_an_unhandled_error_is_logged_by_its_route_never_by_a_path_holding_an_identity_number(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("sharing", "INFO")  # as a service logs: JSON lines on stdout
    response = await _get("/v1/subjects/110101199003071234")
    assert response.status_code == 500
    # The service's own lines (httpx logs this test client's request, path and all).
    logged = "\n".join(line for line in capsys.readouterr().out.splitlines() if '"logger":"httpx"' not in line)
    assert "unhandled_error" in logged
    assert "/v1/subjects/{subject_id}" in logged
    assert "110101199003071234" not in logged
