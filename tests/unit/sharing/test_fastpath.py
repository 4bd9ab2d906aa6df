"""The ASGI fast lane for subject lookups answers only the plain, successful case and passes
everything else to the FastAPI app untouched."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry, Histogram
from starlette.types import Message, Receive, Scope, Send

from services.sharing.fastpath import SubjectLookups


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.app_calls = 0
        self.fail = False

    async def lookup(self, subject_id: str, as_of: str | None, known_at: str | None, public: bool) -> dict[str, Any]:
        self.calls.append((subject_id, as_of, known_at, public))
        if self.fail:
            raise ValueError("bad moment")
        return {"subject_id": subject_id, "entries": []}

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.app_calls += 1
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def scope(path: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {"type": "http", "method": "GET", "path": path, "query_string": query, "headers": headers or []}


async def call(layer: SubjectLookups, s: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        await asyncio.sleep(0)
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await layer(s, receive, send)
    return sent


@pytest.fixture
def parts() -> tuple[Recorder, SubjectLookups, Histogram]:
    rec = Recorder()
    hist = Histogram("t_seconds", "t", ["route", "method", "status"], registry=CollectorRegistry())
    return rec, SubjectLookups(rec.app, rec.lookup, hist), hist


async def test_a_plain_lookup_is_answered_directly_and_timed(parts: tuple[Recorder, SubjectLookups, Histogram]) -> None:
    rec, layer, hist = parts
    sent = await call(layer, scope("/v1/public/subjects/91110000MA01ABCDEX", b"as_of=2026-06-01&known_at=2026-07-01"))
    assert rec.calls == [("91110000MA01ABCDEX", "2026-06-01", "2026-07-01", True)]
    assert rec.app_calls == 0
    assert sent[0]["status"] == 200
    body = sent[1]["body"]
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(body)).encode()
    assert orjson.loads(body)["subject_id"] == "91110000MA01ABCDEX"
    sample = hist.labels(route="/v1/public/subjects/{subject_id}", method="GET", status="200")
    assert sample._sum.get() > 0


@pytest.mark.parametrize(
    "s",
    [
        scope("/v1/subjects/X", b"as_of=2026-06-01&limit=3"),  # a parameter it does not know
        scope("/v1/subjects/X", headers=[(b"traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")]),
        scope("/v1/subjects/"),
        scope("/v1/subjects/X/more"),
        scope("/v1/lists/black"),
        {**scope("/v1/subjects/X"), "method": "POST"},
    ],
)
async def test_everything_else_goes_to_the_app(parts: tuple[Recorder, SubjectLookups, Histogram], s: Scope) -> None:
    rec, layer, _ = parts
    sent = await call(layer, s)
    assert rec.calls == []
    assert rec.app_calls == 1
    assert sent[0]["status"] == 418


async def test_a_failed_lookup_is_answered_by_the_app(parts: tuple[Recorder, SubjectLookups, Histogram]) -> None:
    rec, layer, _ = parts
    rec.fail = True
    sent = await call(layer, scope("/v1/subjects/X", b"as_of=last+tuesday"))
    assert rec.calls == [("X", "last tuesday", None, False)]
    assert rec.app_calls == 1
    assert sent[0]["status"] == 418
