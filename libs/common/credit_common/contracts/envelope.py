"""The CloudEvents 1.0 envelope (structured JSON mode) every message value of the platform uses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
import uuid_utils
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

CONTENT_TYPE = "application/cloudevents+json"

#: The largest message value the platform takes (contracts.md, Integrity rules: `too_large`).
MAX_MESSAGE_BYTES = 512 * 1024

#: An envelope attribute: printable, without control characters (a NUL in an `id` once stopped a
#: consumer for good: PostgreSQL refused the inbox row and then the dead letter keyed by it).
Attribute = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


def safe_attribute(value: Any) -> str | None:
    """`value` if it could be an envelope attribute (a str of 1 to 200 characters without control
    characters), else None: what a refusal may echo of a message it could not parse."""
    if isinstance(value, str) and 0 < len(value) <= 200 and value.isprintable():
        return value
    return None


def nul_field(raw: bytes, doc: Any = None) -> str | None:
    """The field (dotted path, "" for the top) of the JSON document `raw` (`doc` when it is
    already parsed) that holds a NUL character, or None. A NUL can only be written `\\u0000` in
    JSON, so a document without those bytes is neither parsed nor walked."""
    if b"\\u0000" not in raw:
        return None
    where = unstorable(orjson.loads(raw) if doc is None else doc, "")
    return None if where is None else where.lstrip(".")


def unstorable(value: Any, path: str = "data") -> str | None:
    """Where `value` (parsed JSON) holds a string PostgreSQL cannot store (a NUL character), or
    None. Lone surrogates never get this far: the JSON parser refuses them."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in k:
                return f"{path}.<key>"
            found = unstorable(v, f"{path}.{k}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = unstorable(v, f"{path}.{i}")
            if found is not None:
                return found
    return None


def new_id() -> str:
    """A UUIDv7: unique, time-ordered, the event's idempotency key."""
    return str(uuid_utils.uuid7())


class CloudEvent(BaseModel):
    """One event. `id` is its idempotency key; `data` is validated against the model of `type`."""

    model_config = ConfigDict(extra="allow", frozen=False)

    specversion: Literal["1.0"] = "1.0"
    id: Attribute
    source: Attribute
    type: Attribute
    time: AwareDatetime  # RFC 3339 with an offset (contracts.md); a naive time is not an event
    subject: Attribute | None = None
    datacontenttype: str = "application/json"
    correlationid: Attribute | None = None
    causationid: Attribute | None = None
    # Extension attributes of a signed request (contracts.md, Security): the key id and the
    # Ed25519 signature over the RFC 8785 form of the envelope without `signature`. Their form is
    # checked by the signature check (`bad_signature`), not here, so a malformed one is answered.
    signaturekid: Attribute | None = None
    signature: str | None = Field(default=None, min_length=1, max_length=200)
    data: Any = None

    @property
    def source_unit(self) -> str | None:
        """The unit code when the source is `unit/<code>`, else None."""
        return self.source[5:] if self.source.startswith("unit/") else None


def new_event(
    type: str,
    source: str,
    data: Any,
    *,
    time: datetime,
    subject: str | None = None,
    id: str | None = None,
    correlationid: str | None = None,
    causationid: str | None = None,
) -> CloudEvent:
    """Build an envelope; `data` may be a pydantic model or plain JSON-able value.

    `time` must carry an offset."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json", exclude_none=True)
    if time.tzinfo is None:
        raise ValueError("event time needs an offset")
    return CloudEvent(
        id=id or new_id(),
        source=source,
        type=type,
        time=time,
        subject=subject,
        correlationid=correlationid,
        causationid=causationid,
        data=data,
    )
