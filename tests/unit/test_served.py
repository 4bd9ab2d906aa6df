"""`served(app)`: what uvicorn runs is the app behind the layers its routes put in front of it."""

from __future__ import annotations

from typing import Any

from credit_common.service import served
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send


class Tag:
    def __init__(self, inner: ASGIApp, name: str, seen: list[str]) -> None:
        self.inner, self.name, self.seen = inner, name, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.seen.append(self.name)
        await self.inner(scope, receive, send)


def test_an_app_without_front_layers_is_served_as_it_is() -> None:
    app = FastAPI()
    assert served(app) is app


async def test_front_layers_run_outermost_first_before_the_app() -> None:
    app = FastAPI()
    seen: list[str] = []

    @app.get("/x")
    async def x() -> dict[str, Any]:
        seen.append("app")
        return {}

    app.state.front = [lambda inner: Tag(inner, "outer", seen), lambda inner: Tag(inner, "inner", seen)]
    asgi = served(app)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": b"", "root_path": ""}
    await asgi(scope, receive, send)  # type: ignore[arg-type]
    assert seen == ["outer", "inner", "app"]
    assert sent[0]["status"] == 200
