"""A JSON response rendered by orjson. A route that returns one skips FastAPI's generic
`jsonable_encoder` walk (hundreds of microseconds for a nested document): datetimes, dates and
UUIDs are rendered by orjson directly. Used by hot read endpoints."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
