"""The FastAPI application every service starts from: OpenAPI at `/docs`, problem details,
health and metrics endpoints, request timing, bearer-token authorisation (`credit_common.http.auth`)
and a place for the AsyncAPI document."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, Histogram
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from credit_common import docs_assets
from credit_common.http import openapi
from credit_common.http.auth import Authenticator, AuthMiddleware
from credit_common.http.guard import HostileInputMiddleware
from credit_common.http.health import HealthChecks, health_router
from credit_common.http.problems import install_problem_handlers
from credit_common.security.tokens import TokenVerifier
from credit_common.telemetry.metrics import ServiceMetrics

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]

#: The route label of requests no route matched (their raw paths would explode the label set).
UNMATCHED_ROUTE = "<unmatched>"


class RequestTimingMiddleware:
    """Record `credit_http_request_seconds{route,method,status}` for every HTTP request, labelled by
    the route's path template (`/v1/designations/{id}`), never the raw path."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def timing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timing_send)
        finally:
            # The router writes the matched route into the shared scope dict.
            route: BaseRoute | None = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            self.histogram.labels(route=template, method=scope["method"], status=str(status)).observe(
                time.perf_counter() - started
            )


def create_http_app(
    service: str,
    title: str,
    description: str,
    checks: HealthChecks,
    registry: CollectorRegistry,
    lifespan: Lifespan | None = None,
    version: str = "1.0.0",
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """A FastAPI app for `service`: Swagger UI at `/docs`, the document at `/openapi.json`,
    problem-details errors, `/health/live`, `/health/ready`, `/metrics` and request timing.
    Every request passes `authenticator` (default: tokens verified as the settings say) against
    the table of `credit_common.http.auth`. Add the service's routes with
    `app.include_router(...)` before it starts."""
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        docs_url=None,  # served below, with its assets from this service (docs_assets)
        openapi_url="/openapi.json",
        redoc_url=None,
        lifespan=lifespan,
    )
    # Registers every credit_* family, so /metrics lists them before the first message.
    metrics = ServiceMetrics(service, registry)
    app.state.service = service
    app.state.metrics = metrics
    app.state.health_checks = checks
    install_problem_handlers(app)
    authenticator = authenticator or Authenticator(TokenVerifier.from_settings())
    app.state.authenticator = authenticator
    app.add_middleware(AuthMiddleware, authenticator=authenticator)
    app.add_middleware(HostileInputMiddleware)  # outside authentication: refused before anything reads it
    # Added last, so it is outermost and also times the 500s the problem middleware answers.
    app.add_middleware(RequestTimingMiddleware, histogram=metrics.http_request_seconds)
    app.include_router(health_router(checks, registry))
    mount_docs(app, title)
    openapi.install(app)
    return app


def mount_docs(app: FastAPI, title: str) -> None:
    """Swagger UI at `/docs` with its script, styles and icon from `/docs/assets` (the pinned npm
    packages `make deps` fetched: credit_common.docs_assets), not from a CDN."""
    directory = docs_assets.assets_dir()

    async def swagger() -> HTMLResponse:
        if not docs_assets.present(directory):
            return HTMLResponse(docs_assets.missing_page(f"{title}: API documentation"), status_code=503)
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{title}: API documentation",
            swagger_js_url=docs_assets.SWAGGER_JS,
            swagger_css_url=docs_assets.SWAGGER_CSS,
            swagger_favicon_url=docs_assets.SWAGGER_ICON,
        )

    app.add_api_route("/docs", swagger, methods=["GET"], include_in_schema=False)
    app.mount(docs_assets.PREFIX, StaticFiles(directory=directory, check_dir=False), name="docs-assets")


def mount_asyncapi(app: FastAPI, html: str, json_doc: dict[str, Any]) -> None:
    """Serve the service's AsyncAPI document: rendered at `/docs/asyncapi`, raw at
    `/docs/asyncapi.json` (both outside the OpenAPI document)."""

    async def asyncapi_html() -> HTMLResponse:
        if not docs_assets.present():
            return HTMLResponse(docs_assets.missing_page("AsyncAPI documentation"), status_code=503)
        return HTMLResponse(html)

    async def asyncapi_json() -> JSONResponse:
        return JSONResponse(json_doc)

    app.add_api_route("/docs/asyncapi", asyncapi_html, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs/asyncapi.json", asyncapi_json, methods=["GET"], include_in_schema=False)
