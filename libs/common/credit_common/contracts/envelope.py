"""The CloudEvents 1.0 envelope (structured JSON mode) every message value of the platform uses."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import uuid_utils
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

CONTENT_TYPE = "application/cloudevents+json"


def new_id() -> str:
    """A UUIDv7: unique, time-ordered, the event's idempotency key."""
    return str(uuid_utils.uuid7())


class CloudEvent(BaseModel):
    """One event. `id` is its idempotency key; `data` is validated against the model of `type`."""

    model_config = ConfigDict(extra="allow", frozen=False)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=200)
    time: AwareDatetime  # RFC 3339 with an offset (contracts.md); a naive time is not an event
    subject: str | None = Field(default=None, max_length=200)
    datacontenttype: str = "application/json"
    correlationid: str | None = None
    causationid: str | None = None
    # Extension attributes of a signed request (contracts.md, Security): the key id and the
    # Ed25519 signature over the RFC 8785 form of the envelope without `signature`. Their form is
    # checked by the signature check (`bad_signature`), not here, so a malformed one is answered.
    signaturekid: str | None = Field(default=None, min_length=1, max_length=200)
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
