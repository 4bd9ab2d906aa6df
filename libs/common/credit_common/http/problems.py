"""RFC 9457 problem details: every error a service answers over HTTP is `application/problem+json`."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from credit_common.telemetry.logging import get_logger

PROBLEM_JSON = "application/problem+json"
#: Status of a request whose parameters or body do not match the schema (FastAPI's convention).
VALIDATION_STATUS = 422

_log = get_logger(__name__)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Problem(Exception):
    """Raise from a route to answer with a problem document.

    `type` is a URI naming the kind of problem (`about:blank` when the status says it all); `extra`
    members (e.g. `errors`, `request_id`) are added to the document as they are.
    """

    def __init__(
        self,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        type: str = "about:blank",
        instance: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title or _phrase(status))
        self.status = status
        self.title = title or _phrase(status)
        self.detail = detail
        self.type = type
        self.instance = instance
        self.headers = dict(headers or {})
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        """The problem document."""
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail is not None:
            body["detail"] = self.detail
        if self.instance is not None:
            body["instance"] = self.instance
        body.update(self.extra)
        return body


def problem_response(problem: Problem) -> Response:
    """The `application/problem+json` response for `problem`."""
    return JSONResponse(
        jsonable_encoder(problem.to_dict()),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_JSON,
    )


async def _on_problem(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def _on_http_exception(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code in {204, 304}:
        return Response(status_code=exc.status_code, headers=headers)
    extra: dict[str, Any] = {}
    detail: str | None
    if isinstance(exc.detail, str):
        # Starlette fills an absent detail with the status phrase: no need to say it twice.
        detail = None if exc.detail == _phrase(exc.status_code) else exc.detail
    else:
        detail, extra["errors"] = None, exc.detail
    return problem_response(Problem(exc.status_code, detail=detail, headers=headers, **extra))


async def _on_validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "code": error.get("type", "invalid"),
            "field": ".".join(str(part) for part in error.get("loc", ())),
            "message": error.get("msg", ""),
        }
        for error in exc.errors()
    ]
    return problem_response(
        Problem(
            VALIDATION_STATUS,
            title="Request validation failed",
            detail=f"{len(errors)} invalid field(s) in the request.",
            errors=errors,
        )
    )


def _route_of(scope: Scope) -> str:
    """The matched route's template (`/v1/subjects/{subject_id}`), never the raw path: a path may
    hold an identity number, and an error log line must not."""
    return str(getattr(scope.get("route"), "path", None) or "<unmatched>")


def _internal_error() -> Response:
    return problem_response(Problem(500, detail="An unexpected error occurred; it has been logged."))


async def _on_unhandled(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log, never to the client.
    _log.error("unhandled_error", method=request.method, route=_route_of(request.scope), exc_info=exc)
    return _internal_error()


class UnhandledErrorMiddleware:
    """Turn an exception that escaped every handler into a logged 500 problem.

    Starlette's own last-resort handler answers too, but then re-raises so the server logs the
    traceback a second time; this one stops it here, inside the request-timing middleware.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # too late for a problem document: let the server cut the response
                raise
            _log.error("unhandled_error", method=scope.get("method"), route=_route_of(scope), exc_info=exc)
            await _internal_error()(scope, receive, send)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer `Problem`, HTTP errors (404, 405, ...), request validation errors (422, each error
    under `errors` as `{code, field, message}`) and any unhandled exception (500) with problem
    details."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_unhandled)
    app.add_middleware(UnhandledErrorMiddleware)
