"""The hot read, served at the ASGI level: `GET /v1/subjects/{id}` and `GET /v1/public/subjects/{id}`
are what every enforcing department's system asks before it applies a measure, a thousand times
a second. Through FastAPI's routing, dependency solving and middleware stack a lookup costs about
three times what the lookup itself does, so this layer answers the plain, successful case
directly with the very same function the FastAPI route calls (`lookup`).

Anything else passes through to the FastAPI app untouched: other paths, a query parameter this
layer does not know, a request that carries a `traceparent` (so traced requests get their spans),
and every error (the route answers it again, with its problem details). The request is timed in
the same histogram, under the route's template."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from prometheus_client import Histogram
from starlette.types import ASGIApp, Receive, Scope, Send

Lookup = Callable[[str, str | None, str | None, bool], Awaitable[dict[str, Any]]]

ROUTES = (("/v1/public/subjects/", True), ("/v1/subjects/", False))
KNOWN = frozenset({"as_of", "known_at"})
HEADERS = [(b"content-type", b"application/json")]


class SubjectLookups:
    def __init__(self, app: ASGIApp, lookup: Lookup, histogram: Histogram) -> None:
        self.app = app
        self.lookup = lookup
        self.histogram = histogram
        # Each route's timing series, looked up once (labels() costs more than the observation).
        self.timed = {
            public: histogram.labels(route=template, method="GET", status="200")
            for public, template in ((True, "/v1/public/subjects/{subject_id}"), (False, "/v1/subjects/{subject_id}"))
        }

    def _match(self, scope: Scope) -> tuple[str, bool, dict[str, str]] | None:
        if scope["type"] != "http" or scope["method"] != "GET":
            return None
        path: str = scope["path"]
        for prefix, public in ROUTES:
            if path.startswith(prefix):
                subject_id = path[len(prefix) :]
                if not subject_id or "/" in subject_id:
                    return None
                params = dict(parse_qsl(scope["query_string"].decode("latin-1")))
                if not params.keys() <= KNOWN:
                    return None
                if any(name == b"traceparent" for name, _ in scope["headers"]):
                    return None
                return subject_id, public, params  # (the server has percent-decoded the path)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = self._match(scope)
        if match is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        subject_id, public, params = match
        try:
            doc = await self.lookup(subject_id, params.get("as_of"), params.get("known_at"), public)
        except Exception:  # a Problem, a bad moment, the database gone: the route answers it, in full
            await self.app(scope, receive, send)
            return
        body = orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
        await send({"type": "http.response.start", "status": 200, "headers": [*HEADERS, content_length(body)]})
        await send({"type": "http.response.body", "body": body})
        self.timed[public].observe(time.perf_counter() - started)


def content_length(body: bytes) -> tuple[bytes, bytes]:
    return (b"content-length", str(len(body)).encode())
