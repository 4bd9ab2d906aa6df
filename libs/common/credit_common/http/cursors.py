"""Opaque paging cursors (contracts.md, HTTP: lists are paged with `limit` and an opaque
`cursor`): a small JSON document, base64url without padding. A cursor names the filters it was
made for, so one made for another list or other filters is refused, never silently misapplied."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from credit_common.http.problems import Problem


def encode_cursor(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(doc)).decode().rstrip("=")


def decode_cursor(cursor: str, scope: dict[str, Any], fields: tuple[str, ...] = ("after",)) -> dict[str, Any]:
    """The cursor's document; 400 problem details when it is not one this service gave out
    (or lacks one of `fields`) or was made for another `scope`."""
    try:
        doc = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(doc, dict) or any(f not in doc for f in fields):
            raise ValueError("not a cursor")
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise Problem(400, "Bad cursor", "the cursor is not one this service gave out") from exc
    if any(doc.get(k) != v for k, v in scope.items()):
        raise Problem(400, "Bad cursor", "the cursor belongs to another list or other filters")
    return doc
