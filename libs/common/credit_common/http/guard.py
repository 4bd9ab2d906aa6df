"""Hostile input stops at the door (contracts.md, Integrity rules): a path or query parameter with a
control character (NUL included) or bytes that are not UTF-8 answers 400, and a body over 512 KiB
answers 413 before anything reads it. Without this, `%00` reached PostgreSQL from 13 endpoints and
came back as a 500."""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from credit_common.contracts.envelope import MAX_MESSAGE_BYTES
from credit_common.http.problems import Problem, problem_response

#: The largest HTTP body: the largest message the platform takes (contracts.md, Integrity rules).
MAX_BODY_BYTES = MAX_MESSAGE_BYTES

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def _control_problem(where: str) -> Problem:
    return Problem(
        400,
        "Malformed request",
        f"the {where} holds a control character or bytes that are not UTF-8",
        errors=[{"code": "schema_violation", "field": where, "message": "control characters are not allowed"}],
    )


def _too_large(size: int | None) -> Problem:
    told = f"{size} bytes" if size is not None else "the body"
    return Problem(
        413,
        "Request body too large",
        f"{told} is over the {MAX_BODY_BYTES} bytes a request may have",
        errors=[{"code": "too_large", "field": None, "message": f"at most {MAX_BODY_BYTES} bytes"}],
    )


def _unsafe(raw: bytes) -> bool:
    if _CONTROL.search(raw):
        return True
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


class HostileInputMiddleware:
    """Refuses, before routing, authentication or parsing, what no endpoint of the platform can
    take: control characters in the path or query (percent-encoded or not) and oversize bodies
    (by `Content-Length`, or counted as a chunked body arrives)."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
        if _unsafe(unquote_to_bytes(raw_path)):
            await problem_response(_control_problem("path"))(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        if query and _unsafe(unquote_to_bytes(query.replace(b"+", b" "))):
            await problem_response(_control_problem("query"))(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_body:
                    await problem_response(_too_large(declared))(scope, receive, send)
                    return
        seen = 0

        async def counting_receive() -> Message:
            # A chunked body is counted as it arrives; the route reading it gets the 413 problem
            # raised into it (the problem handlers answer it like any other).
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _too_large(None)
            return message

        await self.app(scope, counting_receive, send)
